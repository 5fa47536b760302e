"""Shared schema pieces."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.responses import Response


class Public(BaseModel):
    """A response schema read from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class ModelResponse(Response):
    """A response schema instance sent as JSON as it is. For hot read routes (declare ``response_model=`` for
    the OpenAPI document): FastAPI would validate the instance again, in the threadpool for a sync route."""

    media_type = "application/json"

    def __init__(self, content: BaseModel | list[BaseModel], status_code: int = 200) -> None:
        if isinstance(content, list):
            body = b"[" + b",".join(item.__pydantic_serializer__.to_json(item) for item in content) + b"]"
        else:
            body = content.__pydantic_serializer__.to_json(content)
        super().__init__(body, status_code)


class ErrorBody(BaseModel):
    """What the API answers for a refused request (404, 409, 422, ...)."""

    detail: str | list[dict[str, Any]] = Field(
        description="What is wrong, in words (a body that does not fit its schema: FastAPI's list of errors)."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Invalid specs and requests: one entry per problem; ``field`` names it."
    )
    param: str | None = Field(default=None, description="The query parameter at fault.")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: a name jobs can refer to in a spec: no spaces, commas or '@' (``name@3`` pins version 3)
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
]
