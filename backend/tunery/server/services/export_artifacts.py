"""Artifacts as the API shows them (with their /v1 id when an export serves them), export job listings, and
deleting an artifact with its files (never anything outside the storage root)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tunery.server.api.schemas.exports import ExportPublic
from tunery.server.api.schemas.jobs import ArtifactPublic, JobPublic
from tunery.server.config import Settings
from tunery.server.db.models import Artifact, Job, JobKind, Project
from tunery.server.errors import NotFoundError
from tunery.server.services.served_exports import serve_model_id
from tunery.server.services.served_models import base_name
from tunery.server.storage import Storage, UnsafePathError, safe_join
from tunery.server.worker.artifacts import kind_of


def artifact_rows(session: Session, job_id: str) -> Sequence[Artifact]:
    return session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)).all()


def public_artifacts(session: Session, job: Job, rows: Sequence[Artifact]) -> list[ArtifactPublic]:
    base = slug = None
    if job.kind == JobKind.EXPORT:
        project = session.get(Project, job.project_id)
        base, slug = base_name(session, job), project.slug if project is not None else None
    out = []
    for row in rows:
        served = serve_model_id(base, slug, job, row) if base is not None and slug is not None else None
        checks = row.details.get("checks") if isinstance(row.details, dict) else None
        public = ArtifactPublic.model_validate(row).model_copy(
            update={"serve_model_id": served, "checks": dict(checks) if isinstance(checks, dict) else {}}
        )
        out.append(public)
    return out


def list_exports(session: Session, project_id: str, limit: int) -> list[ExportPublic]:
    """The project's export jobs, newest first, with what they asked for and wrote."""
    rows = session.scalars(
        select(Job)
        .where(Job.project_id == project_id, Job.kind == JobKind.EXPORT)
        .options(selectinload(Job.dataset_versions))
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    ).all()
    out = []
    for job in rows:
        asked = dict(job.export or {})
        out.append(
            ExportPublic(
                job=JobPublic.model_validate(job),
                source_model=str(asked.get("model", "")),
                extra_adapters=[str(model) for model in asked.get("extra_adapters", [])],
                artifacts=public_artifacts(session, job, artifact_rows(session, job.id)),
                request={key: value for key, value in asked.items() if key != "lineage"},
            )
        )
    return out


def find_artifact(session: Session, job_id: str, name: str) -> Artifact:
    artifact = session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
    if artifact is None:
        raise NotFoundError("artifact not found")
    return artifact


def artifact_path(storage: Storage, artifact: Artifact) -> Path:
    try:
        return safe_join(storage.root, artifact.path)
    except UnsafePathError as exc:
        raise NotFoundError("artifact file is not inside the storage root") from exc


def other_paths(storage: Storage, artifact: Artifact, rows: Sequence[Artifact]) -> list[Path]:
    """The files and folders of the job's other artifacts (inside a folder artifact, they are not part of it)."""
    found = []
    for row in rows:
        if row.id == artifact.id:
            continue
        try:
            found.append(safe_join(storage.root, row.path).resolve())
        except UnsafePathError:
            continue
    return found


def folder_members(folder: Path, others: Sequence[Path]) -> list[Path]:
    """The top-level entries of a folder artifact that belong to it: not another artifact, nor holding one."""
    members = []
    for entry in sorted(folder.iterdir()):
        real = entry.resolve()
        if any(real == other or other.is_relative_to(real) for other in others):
            continue
        members.append(entry)
    return members


def delete_artifact(session: Session, settings: Settings, storage: Storage, job: Job, artifact: Artifact) -> None:
    """Remove the artifact's files (a folder artifact: what is its own, not its neighbours') and its row
    (not committed). A merged model keeps its tokenizer while GGUF files of the job still use it."""
    rows = artifact_rows(session, job.id)
    path = artifact_path(storage, artifact)
    if path.is_dir() and not path.is_symlink():
        others = other_paths(storage, artifact, rows)
        keep_for_gguf = any(row.format == "gguf" and row.id != artifact.id for row in rows)
        for entry in folder_members(path, others):
            if keep_for_gguf and entry.is_file() and _gguf_needs(entry.name):
                continue
            if entry.name.startswith(".") or entry.name == "export_results.json":
                continue
            storage.remove(entry)
        if not any(path.iterdir()) and path.resolve() != (settings.storage_root / (job.output_dir or "")).resolve():
            storage.remove(path)
    elif path.exists() or path.is_symlink():
        storage.remove(path)
    session.delete(artifact)


def _gguf_needs(name: str) -> bool:
    """Kept when the merged model is deleted while GGUF files use its tokenizer (served with tokenizer_path)."""
    return kind_of(name) == "tokenizer" or name in ("config.json", "generation_config.json")
