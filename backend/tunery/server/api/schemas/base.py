"""Shared schema pieces."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class Public(BaseModel):
    """A response schema read from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: a name jobs can refer to in a spec: no spaces, commas or '@' (``name@3`` pins version 3)
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
]
