"""Reading POST /api/jobs bodies: JSON (``JobCreate``) or a LLaMA-Factory YAML file with query parameters."""

from __future__ import annotations

import json
from typing import Annotated, Any

import yaml
from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from tunery.server.api.schemas.jobs import JobCreate
from tunery.server.services.job_inputs import JobInputError, Problem

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
SPEC_SCHEMA = {
    "anyOf": [
        {"$ref": "#/components/schemas/JobSpec"},
        {"type": "object", "description": "LLaMA-Factory flat keys (model_name_or_path, dataset, ...)"},
    ]
}
_create_schema = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
_create_schema["properties"]["spec"] = {**SPEC_SCHEMA, "description": "The job spec."}
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _create_schema},
            "application/yaml": {"schema": SPEC_SCHEMA},
        },
    }
}


async def read_create_body(
    request: Request,
    project_id: Annotated[str | None, Query(description="With a YAML body: project id or slug.")] = None,
    experiment_id: Annotated[str | None, Query(description="With a YAML body.")] = None,
    name: Annotated[str | None, Query(description="With a YAML body.")] = None,
    gpus: Annotated[int | None, Query(description="With a YAML body.")] = None,
) -> JobCreate:
    """The request as a JobCreate; query parameters fill in what a (YAML or JSON) body leaves out."""
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    raw = await request.body()
    yaml_body = media_type in YAML_TYPES
    fields: dict[str, Any] = {"spec": _load(raw, yaml_body=True)} if yaml_body else _load(raw, yaml_body=False)
    for key, value in (("project_id", project_id), ("experiment_id", experiment_id), ("name", name), ("gpus", gpus)):
        if value is not None:
            fields.setdefault(key, value)
    try:
        return JobCreate.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc


def _load(raw: bytes, *, yaml_body: bool) -> dict[str, Any]:
    kind = "YAML" if yaml_body else "JSON"
    try:
        value = yaml.safe_load(raw) if yaml_body else json.loads(raw or b"null")
    except (yaml.YAMLError, ValueError) as exc:
        raise JobInputError([Problem("body", f"not valid {kind}: {exc}")]) from exc
    if not isinstance(value, dict):
        raise JobInputError([Problem("body", f"must be a {kind} object of keys")])
    return value
