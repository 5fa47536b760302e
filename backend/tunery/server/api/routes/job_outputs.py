"""What a job produced: logs, metrics, checkpoints, artifacts (download: a file, or a folder as a zip)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep, StorageDep
from tunery.server.api.schemas.base import ErrorBody
from tunery.server.api.schemas.jobs import (
    ArtifactLink,
    ArtifactPublic,
    CheckpointPublic,
    LogLinePublic,
    LogPage,
    MetricPage,
    MetricPublic,
)
from tunery.server.auth.download_links import DownloadGrant, issue_link_token, read_link_token
from tunery.server.auth.principal import Principal
from tunery.server.db.base import utcnow
from tunery.server.db.models import Checkpoint, LogLine, Metric, Role, User
from tunery.server.errors import NotFoundError
from tunery.server.services.export_artifacts import (
    artifact_path,
    artifact_rows,
    find_artifact,
    other_paths,
    public_artifacts,
)
from tunery.server.services.export_artifacts import delete_artifact as remove_artifact
from tunery.server.services.job_files import zip_folder
from tunery.server.services.jobs import visible_job
from tunery.server.storage import Storage

router = APIRouter(tags=["jobs"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such job or artifact, or not in one of your projects."}
}


ARTIFACT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}, "application/zip": {}}},
    206: {"description": "The byte range asked for (``Range: bytes=...``); files only, not zipped folders."},
    416: {"description": "The range lies outside the file (``Content-Range: bytes */<size>``)."},
    **NOT_FOUND,
}


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


@router.get("/api/jobs/{job_id}/artifacts", response_model=list[ArtifactPublic], responses=NOT_FOUND)
def job_artifacts(job_id: str, session: SessionDep, principal: PrincipalDep) -> list[ArtifactPublic]:
    """What the job produced; an export's artifacts carry their format, checks, lineage and /v1 model id."""
    job = visible_job(session, principal, job_id)
    return public_artifacts(session, job, artifact_rows(session, job_id))


@router.get(
    "/api/jobs/{job_id}/artifacts/{name}",
    response_class=FileResponse,
    response_model=None,
    responses=ARTIFACT_RESPONSES,
)
def download_artifact(
    job_id: str, name: str, session: SessionDep, principal: PrincipalDep, storage: StorageDep
) -> FileResponse | StreamingResponse:
    """The artifact's file (``Range`` requests resume large downloads: 206 with ``Content-Range``), or its
    folder as a zip archive (without the job's other artifacts inside it)."""
    visible_job(session, principal, job_id)
    return _artifact_response(session, storage, job_id, name)


@router.post("/api/jobs/{job_id}/artifacts/{name}/link", responses=NOT_FOUND)
def artifact_link(
    job_id: str, name: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> ArtifactLink:
    """A signed link to the artifact, valid for 10 minutes: browsers download it with a plain link (streamed to
    disk, resumable) since they cannot add the Authorization header to one."""
    visible_job(session, principal, job_id)
    find_artifact(session, job_id, name)
    grant = DownloadGrant(principal.user_id, job_id, name)
    token, expires = issue_link_token(grant, settings.secret_key.get_secret_value(), utcnow())
    return ArtifactLink(url=f"/api/downloads/{token}", expires_at=expires)


@router.get(
    "/api/downloads/{token}",
    response_class=FileResponse,
    response_model=None,
    responses=ARTIFACT_RESPONSES,
)
def download_by_link(token: str, session: SessionDep, settings: SettingsDep, storage: StorageDep) -> Any:
    """What ``/link`` signed, for whoever holds the link until it expires (the signer must still see the job)."""
    grant = read_link_token(token, settings.secret_key.get_secret_value(), utcnow())
    user = session.get(User, grant.user_id) if grant is not None else None
    if grant is None or user is None or not user.is_active:
        raise NotFoundError("download link expired or not valid; ask for a new one")
    visible_job(session, Principal(user, frozenset({"read"})), grant.job_id)
    return _artifact_response(session, storage, grant.job_id, grant.name)


def _artifact_response(session: Session, storage: Storage, job_id: str, name: str) -> FileResponse | StreamingResponse:
    artifact = find_artifact(session, job_id, name)
    path = artifact_path(storage, artifact)
    if path.is_file():
        return FileResponse(path, filename=path.name)  # Starlette answers Range / If-Range (206, 416)
    if path.is_dir():
        others = other_paths(storage, artifact, artifact_rows(session, job_id))
        headers = {"Content-Disposition": f'attachment; filename="{_ascii(artifact.name)}.zip"'}
        return StreamingResponse(zip_folder(path, storage.root, others), media_type="application/zip", headers=headers)
    raise NotFoundError("artifact file is missing")


@router.delete(
    "/api/jobs/{job_id}/artifacts/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, 403: {"model": ErrorBody, "description": "Needs the member role in the project."}},
)
def delete_artifact(
    job_id: str, name: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep, storage: StorageDep
) -> None:
    """Delete the artifact and its files; an export served through /v1 disappears from /v1/models."""
    job = visible_job(session, principal, job_id, Role.MEMBER)
    remove_artifact(session, settings, storage, job, find_artifact(session, job_id, name))
    session.commit()


def _ascii(name: str) -> str:
    return "".join(char if char.isascii() and char.isprintable() and char not in '"\\' else "_" for char in name)
