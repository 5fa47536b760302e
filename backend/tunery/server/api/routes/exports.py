"""Exports: start export jobs, list them with what they wrote, the format catalog and size estimates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from tunery.server.api.deps import PrincipalDep, ProjectMember, ProjectViewer, SessionDep, SettingsDep
from tunery.server.api.schemas.base import ErrorBody
from tunery.server.api.schemas.exports import (
    ExportCatalog,
    ExportCreate,
    ExportEstimate,
    ExportEstimateRequest,
    ExportPublic,
)
from tunery.server.api.schemas.jobs import JobPublic
from tunery.server.idempotency import IdempotencyDep
from tunery.server.services import export_estimate, jobs
from tunery.server.services.export_artifacts import list_exports
from tunery.server.services.exports import create_export

router = APIRouter(tags=["exports"])

Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: {"model": ErrorBody, "description": "Not signed in."}}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "Not found, or in a project you are not a member of."}}
INVALID: Responses = {422: {"model": ErrorBody, "description": "Invalid: ``errors`` or ``param`` name the field."}}
FORBIDDEN: Responses = {403: {"model": ErrorBody, "description": "Your role in the project does not allow this."}}


@router.post(
    "/api/projects/{project_id}/exports",
    status_code=status.HTTP_201_CREATED,
    response_model=JobPublic,
    responses={**UNAUTHORIZED, **NOT_FOUND, **FORBIDDEN, **INVALID},
)
def create_export_route(
    body: ExportCreate, access: ProjectMember, session: SessionDep, settings: SettingsDep, idem: IdempotencyDep
) -> JobPublic:
    """Queue an export job (kind ``export``): merge the model's adapters into its base and write the formats.
    Nothing is queued or stored when the request is invalid."""
    outcome = create_export(session, settings, access.principal, access.project_id, body)
    out = idem.remember(session, status.HTTP_201_CREATED, JobPublic.model_validate(outcome.job))
    jobs.commit(session, settings, outcome)
    return out


@router.get(
    "/api/projects/{project_id}/exports",
    response_model=list[ExportPublic],
    responses={**UNAUTHORIZED, **NOT_FOUND, **INVALID},
)
def list_exports_route(
    access: ProjectViewer, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[ExportPublic]:
    """The project's export jobs, newest first, each with its artifacts (download, /v1 model id, checks)."""
    return list_exports(session, access.project_id, limit)


@router.get("/api/exports/catalog", response_model=ExportCatalog, responses=UNAUTHORIZED)
def export_catalog(principal: PrincipalDep) -> ExportCatalog:
    """The formats an export writes, the GGUF types and the dtypes of a merged model."""
    return export_estimate.catalog()


@router.post("/api/exports/estimate", response_model=ExportEstimate, responses={**UNAUTHORIZED, **INVALID})
def estimate_export(
    body: ExportEstimateRequest, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> ExportEstimate:
    """Expected file sizes: the merged model's parameters x bytes per weight of each dtype / GGUF type."""
    return export_estimate.estimate(session, settings, principal, body)
