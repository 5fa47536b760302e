"""Finding the newest complete checkpoint of a job (in the checkpoints table or on disk)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tunery.server.db.models import Checkpoint, Job, Metric
from tunery.server.worker.jobfile import job_files, resolve_stored_path
from tunery.spec.checkpoints import checkpoint_step, is_complete_checkpoint


def relative_to_root(storage_root: Path, path: Path) -> str:
    """The form paths are stored in: relative to the storage root when inside it."""
    resolved, root = path.resolve(), storage_root.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


def newest_complete_checkpoint(session: Session, storage_root: Path, job_id: str) -> str | None:
    """Relative path of the newest complete checkpoint of the job: known rows and folders on disk.

    A folder the checkpoints table does not know was saved after the relay stopped (an engine outliving its
    worker saves one on SIGTERM); the metrics of its last steps may never have reached the database, and a
    run resumed there would never log them again. Such a folder is taken only when no logged step is
    missing up to it (its step is before the next logging step after the newest stored metric)."""
    candidates: dict[Path, int] = {}
    safe = _last_safe_step(session, job_id)
    for folder in _disk_checkpoints(storage_root, job_id):
        step = checkpoint_step(folder)
        if step is not None and step <= safe:
            candidates[folder] = step
    for row in session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.deleted.is_(False))):
        candidates[resolve_stored_path(storage_root, row.path)] = row.step
    for path, _step in sorted(candidates.items(), key=lambda item: item[1], reverse=True):
        if is_complete_checkpoint(path):
            return relative_to_root(storage_root, path)
    return None


def _disk_checkpoints(storage_root: Path, job_id: str) -> list[Path]:
    output = job_files(storage_root, job_id).output_dir
    return list(output.iterdir()) if output.is_dir() else []


def _last_safe_step(session: Session, job_id: str) -> int:
    """The last step whose metrics are all stored: just before the next logging step."""
    last = session.scalar(select(func.max(Metric.step)).where(Metric.job_id == job_id)) or 0
    spec = session.scalar(select(Job.spec).where(Job.id == job_id)) or {}
    logging_steps = spec.get("training", {}).get("logging_steps", 1) if isinstance(spec, dict) else 1
    every = int(logging_steps) if isinstance(logging_steps, (int, float)) and logging_steps >= 1 else 1
    return int(last) + every - 1
