"""Jobs: create (JSON or LLaMA-Factory YAML), list, read, cancel, resume, retry; outputs in job_outputs.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep
from tunery.server.api.routes.job_body import OPENAPI_BODY, read_create_body
from tunery.server.api.routes.job_outputs import router as outputs_router
from tunery.server.api.schemas.base import ModelResponse
from tunery.server.api.schemas.jobs import JobCreate, JobPage, JobPublic
from tunery.server.auth.access import member_project_ids, require_access
from tunery.server.auth.principal import Principal
from tunery.server.db.models import JobKind, JobStatus, Membership, Role
from tunery.server.idempotency import IdempotencyDep
from tunery.server.services import jobs
from tunery.server.services.job_inputs import JobInputError, Problem
from tunery.server.services.job_listing import SUMMARY_FIELDS, JobFilter, list_job_summaries
from tunery.spec import JobSpec

router = APIRouter(tags=["jobs"])


@router.post(
    "/api/jobs",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=OPENAPI_BODY,
    responses={422: {"description": "Invalid spec or data; ``errors`` name the field (and file and row)."}},
)
def create_job(
    body: Annotated[JobCreate, Depends(read_create_body)],
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idem: IdempotencyDep,
) -> JobPublic:
    """Validate the spec and its data, then queue the job. Nothing is queued or stored when invalid."""
    new = jobs.NewJob(
        project_id=_target_project(session, principal, body.project_id),
        spec=body.spec,
        experiment_id=body.experiment_id,
        name=body.name,
        gpus=body.gpus,
        created_by=principal.user_id,
    )
    outcome = jobs.create_job(session, settings, new)
    out = idem.remember(session, status.HTTP_201_CREATED, JobPublic.model_validate(outcome.job))
    jobs.commit(session, settings, outcome)
    return out


@router.get("/api/jobs", response_model=JobPage)
def list_jobs_route(
    session: SessionDep,
    principal: PrincipalDep,
    project_id: Annotated[str | None, Query(description="Project id or slug; default: all your projects.")] = None,
    status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    kind: Annotated[list[JobKind] | None, Query(description="Only jobs of these kinds (train, eval, export).")] = None,
    experiment_id: str | None = None,
    model: Annotated[str | None, Query(description="Registered model id or name.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the job's name or spec.")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ModelResponse:
    """Jobs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    if project_id is not None:
        projects = [require_access(session, principal, project_id).project_id]
        where = JobFilter(projects, status_ or (), experiment_id, model, q, kind or ())
    else:
        where = JobFilter(member_project_ids(principal.user_id), status_ or (), experiment_id, model, q, kind or ())
    rows, next_cursor = list_job_summaries(session, where, cursor, limit)
    # plain dicts validate about twice as fast as attribute access on rows
    items = [dict(zip(SUMMARY_FIELDS, row, strict=True)) for row in rows]
    return ModelResponse(JobPage.model_validate({"items": items, "next_cursor": next_cursor}))


@router.get("/api/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> ModelResponse:
    return ModelResponse(JobPublic.model_validate(jobs.visible_job(session, principal, job_id, with_datasets=True)))


@router.get("/api/jobs/{job_id}/spec")
def get_job_spec(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobSpec:
    """The spec the job runs (names resolved, paths set by the server)."""
    return JobSpec.model_validate(jobs.visible_job(session, principal, job_id).spec)


@router.post("/api/jobs/{job_id}/cancel")
def cancel_job(job_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> JobPublic:
    """A queued job is cancelled at once; a running one gets ``cancel_requested`` and its worker stops it."""
    jobs.visible_job(session, principal, job_id, Role.MEMBER)
    outcome = jobs.cancel_job(session, job_id)
    jobs.commit(session, settings, outcome)
    return JobPublic.model_validate(outcome.job)


@router.post("/api/jobs/{job_id}/resume")
def resume_job(job_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> JobPublic:
    """Queue a failed or cancelled job again: a new attempt that resumes from its newest checkpoint."""
    jobs.visible_job(session, principal, job_id, Role.MEMBER)
    outcome = jobs.resume_job(session, settings, job_id)
    jobs.commit(session, settings, outcome)
    return JobPublic.model_validate(outcome.job)


@router.post("/api/jobs/{job_id}/retry", status_code=status.HTTP_201_CREATED)
def retry_job(job_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> JobPublic:
    """A new job with the same spec and dataset versions (``parent_job_id`` is this job)."""
    jobs.visible_job(session, principal, job_id, Role.MEMBER)
    outcome = jobs.retry_job(session, settings, job_id, principal.user_id)
    jobs.commit(session, settings, outcome)
    return JobPublic.model_validate(outcome.job)


def _target_project(session: SessionDep, principal: Principal, project_ref: str | None) -> str:
    """The project a new job goes to: the given one (member role needed) or the caller's only project."""
    if project_ref is None:
        owned = session.scalars(select(Membership.project_id).where(Membership.user_id == principal.user_id)).all()
        if len(owned) != 1:
            message = f"is required: you are a member of {len(owned)} projects" if owned else "you have no project"
            raise JobInputError([Problem("project_id", message)])
        project_ref = owned[0]
    return require_access(session, principal, project_ref, Role.MEMBER).project_id


router.include_router(outputs_router)
