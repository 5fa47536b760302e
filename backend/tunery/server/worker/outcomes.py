"""What the relay keeps of evaluation events: eval results, the best checkpoint, early stopping.

All of it runs inside the relay's transaction for the event (after the job row is fenced and locked), so
writes of one job never interleave and a repeated event (a new attempt) overwrites what it wrote before.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from tunery.server.db.models import Checkpoint, EvalResult, Job
from tunery.server.storage import UnsafePathError, check_relative
from tunery.server.worker.checkpoints import relative_to_root
from tunery.server.worker.jobfile import job_files
from tunery.server.worker.sql import upsert
from tunery.spec.checkpoints import checkpoint_step
from tunery.spec.events import BestCheckpointEvent, EvalResultEvent, FinishedEvent

log = logging.getLogger(__name__)


def samples_path(storage_root: Path, job_id: str, samples_file: str | None) -> str | None:
    """The samples file (relative to the job's output folder) as stored: relative to the storage root.
    None for none, or for a path that would leave the output folder (it is then never read)."""
    if not samples_file:
        return None
    try:
        relative = check_relative(samples_file)
    except UnsafePathError:
        log.warning("job %s: samples file %r is not inside its output folder; not kept", job_id, samples_file)
        return None
    output = job_files(storage_root, job_id).output_dir
    return relative_to_root(storage_root, output / relative)


def store_eval_result(session: Session, storage_root: Path, job_id: str, attempt: int, event: EvalResultEvent) -> None:
    """One row per (job, name): a later attempt's result replaces the earlier one."""
    row = {
        "job_id": job_id,
        "name": event.name,
        "kind": event.kind,
        "attempt": attempt,
        "metrics": dict(event.metrics),
        "breakdown": {group: dict(values) for group, values in event.breakdown.items()},
        "samples_file": samples_path(storage_root, job_id, event.samples_file),
        "samples": event.samples,
    }
    upsert(
        session,
        EvalResult,
        row,
        keys=("job_id", "name"),
        update=("kind", "attempt", "metrics", "breakdown", "samples_file", "samples"),
    )


def mark_best(session: Session, storage_root: Path, job_id: str, step: int, path: str) -> None:
    """Checkpoint ``step`` becomes the job's only best one (its row is created when its checkpoint event is
    still to come)."""
    session.execute(update(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step != step).values(best=False))
    row = {"job_id": job_id, "step": step, "path": relative_to_root(storage_root, Path(path)), "best": True}
    upsert(session, Checkpoint, row, keys=("job_id", "step"), update=("best",))
    session.execute(update(Job).where(Job.id == job_id).values(best_checkpoint_step=step))


def store_best_checkpoint(session: Session, storage_root: Path, job_id: str, event: BestCheckpointEvent) -> None:
    mark_best(session, storage_root, job_id, event.step, event.path)


def store_finished(session: Session, storage_root: Path, job_id: str, event: FinishedEvent) -> None:
    """Early stopping, and the best checkpoint as the run ends (when the engine names it only here)."""
    session.execute(update(Job).where(Job.id == job_id).values(stopped_early=event.stopped_early))
    if event.best_checkpoint:
        step = checkpoint_step(Path(event.best_checkpoint))
        if step is not None:
            mark_best(session, storage_root, job_id, step, event.best_checkpoint)
