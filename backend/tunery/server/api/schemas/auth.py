"""Login, users and API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr

from tunery.server.api.schemas.base import Email, Public, Request, Title


class LoginRequest(Request):
    email: Email
    password: SecretStr = Field(max_length=1024)


class TokenPublic(Public):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class UserPublic(Public):
    id: str
    email: str
    is_admin: bool
    created_at: datetime


class ApiKeyCreate(Request):
    name: Title
    scopes: list[str] = Field(default_factory=lambda: ["read", "write"], description="read, write")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="none: never expires")


class ApiKeyPublic(Public):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="the key itself: shown only in this response, store it now")
