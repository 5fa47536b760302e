"""Giving a running job back to the queue (dead worker, interrupted attempt), or failing it for good."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from tunery.server.db.models import Gpu, Job, JobStatus
from tunery.server.worker.checkpoints import newest_complete_checkpoint
from tunery.server.worker.events import record_status

TOO_MANY_ATTEMPTS = "too_many_attempts"


@dataclass(frozen=True)
class Transition:
    message: dict[str, Any]  # the status event, to publish after the commit
    enqueue: bool
    queue: str


def release_gpus(session: Session, job_id: str) -> None:
    session.execute(update(Gpu).where(Gpu.job_id == job_id).values(job_id=None))


def requeue_or_fail(
    session: Session,
    storage_root: Path,
    job_id: str,
    guard: list[ColumnElement[bool]],
    reason: str,
    message: str,
    now: datetime,
    *,
    counts: bool = True,
) -> Transition | None:
    """If the job still matches ``guard``: free its GPUs, then queue a new attempt resuming from the
    newest complete checkpoint, or fail it (``too_many_attempts``) once ``max_attempts`` were used.

    ``counts=False`` (a clean stop of the worker, not a failure): the attempt is given back.
    """
    job = session.execute(select(Job).where(Job.id == job_id, *guard).with_for_update()).scalar_one_or_none()
    if job is None:
        return None
    release_gpus(session, job_id)
    job.lease_owner, job.lease_expires_at, job.heartbeat_at = None, None, None
    if not counts:
        job.max_attempts += 1
    if job.attempt >= job.max_attempts:
        job.status, job.finished_at = JobStatus.FAILED, now
        job.error_code = TOO_MANY_ATTEMPTS
        job.error_message = f"{message}; gave up after {job.attempt} attempts"
        event = record_status(
            session, job_id, job.attempt, "failed", job.error_message, reason=reason, error_code=TOO_MANY_ATTEMPTS
        )
        return Transition(event, enqueue=False, queue=job.queue)
    resume = newest_complete_checkpoint(session, storage_root, job_id) or job.resume_from
    job.status, job.resume_from, job.worker_id, job.gpus, job.queued_at = JobStatus.QUEUED, resume, None, [], now
    text = f"{message}; queued again for attempt {job.attempt + 1}"
    if resume:
        text += f", resuming from {resume}"
    event = record_status(session, job_id, job.attempt, "queued", text, reason=reason, resume_from=resume)
    return Transition(event, enqueue=True, queue=job.queue)
