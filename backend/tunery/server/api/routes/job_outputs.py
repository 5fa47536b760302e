"""What a job produced: logs, metrics, checkpoints, artifacts (download: a file, or a folder as a zip)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select

from tunery.server.api.deps import PrincipalDep, SessionDep, StorageDep
from tunery.server.api.schemas.jobs import (
    ArtifactPublic,
    CheckpointPublic,
    LogLinePublic,
    LogPage,
    MetricPage,
    MetricPublic,
)
from tunery.server.db.models import Artifact, Checkpoint, LogLine, Metric
from tunery.server.errors import NotFoundError
from tunery.server.services.job_files import zip_folder
from tunery.server.services.jobs import visible_job
from tunery.server.storage import UnsafePathError, safe_join

router = APIRouter(tags=["jobs"])


@router.get("/api/jobs/{job_id}/logs")
def job_logs(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0, description="Only lines with a greater seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> LogPage:
    visible_job(session, principal, job_id)
    rows = session.scalars(
        select(LogLine).where(LogLine.job_id == job_id, LogLine.seq > after).order_by(LogLine.seq).limit(limit)
    ).all()
    lines = [LogLinePublic.model_validate(row) for row in rows]
    return LogPage(lines=lines, next_after=rows[-1].seq if rows else after)


@router.get("/api/jobs/{job_id}/metrics")
def job_metrics(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    after_step: Annotated[int, Query(description="Only steps after this one.")] = -1,
    limit: Annotated[int, Query(ge=1, le=10000)] = 2000,
) -> MetricPage:
    visible_job(session, principal, job_id)
    rows = session.scalars(
        select(Metric).where(Metric.job_id == job_id, Metric.step > after_step).order_by(Metric.step).limit(limit)
    ).all()
    next_step = rows[-1].step if rows else after_step
    return MetricPage(items=[MetricPublic.model_validate(row) for row in rows], next_after_step=next_step)


@router.get("/api/jobs/{job_id}/checkpoints")
def job_checkpoints(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    include_deleted: bool = False,
) -> list[CheckpointPublic]:
    visible_job(session, principal, job_id)
    query = select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
    if not include_deleted:
        query = query.where(Checkpoint.deleted.is_(False))
    return [CheckpointPublic.model_validate(row) for row in session.scalars(query)]


@router.get("/api/jobs/{job_id}/artifacts")
def job_artifacts(job_id: str, session: SessionDep, principal: PrincipalDep) -> list[ArtifactPublic]:
    visible_job(session, principal, job_id)
    rows = session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name))
    return [ArtifactPublic.model_validate(row) for row in rows]


@router.get(
    "/api/jobs/{job_id}/artifacts/{name}",
    response_class=FileResponse,
    response_model=None,
    responses={200: {"content": {"application/octet-stream": {}, "application/zip": {}}}},
)
def download_artifact(
    job_id: str, name: str, session: SessionDep, principal: PrincipalDep, storage: StorageDep
) -> FileResponse | StreamingResponse:
    """The artifact's file, or its folder as a zip archive."""
    visible_job(session, principal, job_id)
    artifact = session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
    if artifact is None:
        raise NotFoundError("artifact not found")
    try:
        path = safe_join(storage.root, artifact.path)
    except UnsafePathError as exc:
        raise NotFoundError("artifact file is not inside the storage root") from exc
    if path.is_file():
        return FileResponse(path, filename=path.name)
    if path.is_dir():
        headers = {"Content-Disposition": f'attachment; filename="{_ascii(artifact.name)}.zip"'}
        return StreamingResponse(zip_folder(path, storage.root), media_type="application/zip", headers=headers)
    raise NotFoundError("artifact file is missing")


def _ascii(name: str) -> str:
    return "".join(char if char.isascii() and char.isprintable() and char not in '"\\' else "_" for char in name)
