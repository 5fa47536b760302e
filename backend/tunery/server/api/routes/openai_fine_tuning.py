"""OpenAI fine-tuning API (``/v1/fine_tuning/jobs``): create, list, get, cancel, events, checkpoints — the
same jobs as ``/api/jobs``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.concurrency import run_in_threadpool

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep
from tunery.server.api.routes.openai_common import ListedProjects, TargetProject, openai_router, page
from tunery.server.auth.access import require_access
from tunery.server.db.models import Role
from tunery.server.services import finetuning, jobs

router = openai_router("openai-fine-tuning")
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("/v1/fine_tuning/jobs")
async def create_job(
    body: finetuning.FineTuneCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    project_id: TargetProject,
) -> dict[str, Any]:
    """Queue a LoRA fine-tune of a registered base model on uploaded files (validated again, then queued)."""
    job = await run_in_threadpool(finetuning.create, session, settings, project_id, principal.user_id, body)
    return finetuning.job_object(session, settings, job)


@router.get("/v1/fine_tuning/jobs")
def list_jobs(
    session: SessionDep, settings: SettingsDep, projects: ListedProjects, after: str | None = None, limit: Limit = 20
) -> dict[str, Any]:
    rows, more = finetuning.list_page(session, projects, after, limit)
    return page([finetuning.job_object(session, settings, row) for row in rows], more)


@router.get("/v1/fine_tuning/jobs/{job_id}")
def get_job(job_id: str, session: SessionDep, settings: SettingsDep, projects: ListedProjects) -> dict[str, Any]:
    return finetuning.job_object(session, settings, finetuning.visible(session, projects, job_id))


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(
    job_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep, projects: ListedProjects
) -> dict[str, Any]:
    job = finetuning.visible(session, projects, job_id)
    require_access(session, principal, job.project_id, Role.MEMBER, what="job")
    outcome = jobs.cancel_job(session, job.id)
    jobs.commit(session, settings, outcome)
    return finetuning.job_object(session, settings, outcome.job)


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
def list_events(
    job_id: str, session: SessionDep, projects: ListedProjects, after: str | None = None, limit: Limit = 20
) -> dict[str, Any]:
    job = finetuning.visible(session, projects, job_id)
    events, more = finetuning.event_objects(session, job, after, limit)
    return page(events, more)


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
    projects: ListedProjects,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    job = finetuning.visible(session, projects, job_id)
    checkpoints, more = finetuning.checkpoint_objects(session, settings, job, after, limit)
    return page(checkpoints, more)
