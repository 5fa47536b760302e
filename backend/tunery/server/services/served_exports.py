"""An export job's servable artifacts as /v1 models: the merged model (``hf``) as
``ft:<base>:<project slug>:<export job id>``, each GGUF file as ``...:<export job id>:gguf-<type lowercased>``
(served by the ``gguf`` engine with the export folder's tokenizer). Only registered artifacts whose files are
still there are served: deleting an artifact removes its model from /v1/models."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.config import Settings
from tunery.server.db.models import Artifact, Job, JobKind, JobStatus, Project
from tunery.server.services.served_models import FineTuneId
from tunery.server.storage import UnsafePathError, safe_join
from tunery.serving.types import ServeTarget

#: artifact formats served through /v1 (the merged model, and GGUF files through the gguf engine)
SERVED_FORMATS = ("hf", "gguf")


def serve_model_id(base: str, project_slug: str, job: Job, artifact: Artifact) -> str | None:
    """The /v1 id of an export job's artifact, None when it is not served (ONNX, GPTQ, the card...)."""
    if job.kind != JobKind.EXPORT or job.status != JobStatus.SUCCEEDED or artifact.format not in SERVED_FORMATS:
        return None
    if artifact.format == "gguf":
        if not artifact.quantization:
            return None
        return str(FineTuneId(base, project_slug, job.id, gguf=artifact.quantization.lower()))
    return str(FineTuneId(base, project_slug, job.id))


def artifact_file(settings: Settings, artifact: Artifact) -> Path | None:
    try:
        return safe_join(settings.storage_root, artifact.path)
    except UnsafePathError:
        return None


def export_targets(session: Session, settings: Settings, job: Job, project: Project, base: str) -> list[ServeTarget]:
    """What a succeeded export job serves (its hf and gguf artifacts whose files exist), in name order."""
    if job.status != JobStatus.SUCCEEDED or not job.output_dir:
        return []
    rows = session.scalars(
        select(Artifact).where(Artifact.job_id == job.id, Artifact.format.in_(SERVED_FORMATS)).order_by(Artifact.name)
    )
    data = job.spec.get("data", {})
    template, tool_format = data.get("template"), data.get("tool_format")
    created = int(job.created_at.timestamp())
    export_dir = artifact_file(settings, Artifact(path=job.output_dir))
    targets: list[ServeTarget] = []
    for row in rows:
        ident, path = serve_model_id(base, project.slug, job, row), artifact_file(settings, row)
        if ident is None or path is None or export_dir is None:
            continue
        if row.format == "hf" and (path / "config.json").is_file():
            targets.append(ServeTarget(ident, str(path), template, None, project.slug, created, False, tool_format))
        elif row.format == "gguf" and path.is_file():
            targets.append(
                ServeTarget(
                    ident,
                    str(path),
                    template,
                    None,
                    project.slug,
                    created,
                    False,
                    tool_format,
                    engine="gguf",
                    tokenizer_path=str(export_dir),
                )
            )
    return targets
