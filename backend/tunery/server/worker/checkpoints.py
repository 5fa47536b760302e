"""Finding the newest complete checkpoint of a job (in the checkpoints table or on disk)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.db.models import Checkpoint
from tunery.server.worker.jobfile import job_files, resolve_stored_path
from tunery.spec.checkpoints import checkpoint_step, is_complete_checkpoint


def relative_to_root(storage_root: Path, path: Path) -> str:
    """The form paths are stored in: relative to the storage root when inside it."""
    resolved, root = path.resolve(), storage_root.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


def newest_complete_checkpoint(session: Session, storage_root: Path, job_id: str) -> str | None:
    """Relative path of the newest complete checkpoint of the job: known rows and folders on disk."""
    candidates: dict[Path, int] = {}
    for row in session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.deleted.is_(False))):
        candidates[resolve_stored_path(storage_root, row.path)] = row.step
    output = job_files(storage_root, job_id).output_dir
    if output.is_dir():
        for folder in output.iterdir():
            step = checkpoint_step(folder)
            if step is not None:
                candidates[folder] = step
    for path, _step in sorted(candidates.items(), key=lambda item: item[1], reverse=True):
        if is_complete_checkpoint(path):
            return relative_to_root(storage_root, path)
    return None
