"""Project secrets: names and dates only; a value goes in (PUT) and never comes out."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from tunery.server.api.schemas.base import Public, Request


class SecretPut(Request):
    value: str = Field(min_length=1, max_length=20000, description="The secret (a hub token); stored encrypted.")


class SecretPublic(Public):
    name: str
    created_at: datetime
    updated_at: datetime
