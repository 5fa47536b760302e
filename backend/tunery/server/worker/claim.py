"""Claiming a queued job: one transaction allocates GPUs (or a CPU slot) and moves the job to running.

Every claim on a worker first updates that worker's row, which serializes claims on it (a row lock on
PostgreSQL, the write lock on SQLite); GPU rows are also locked and taken with ``WHERE job_id IS NULL``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tunery.server.db.base import utcnow
from tunery.server.db.models import Gpu, Job, JobKind, JobStatus, LogLine, Worker
from tunery.server.worker.events import record_status


class Refused(enum.Enum):
    GONE = "gone"  # not queued any more (claimed by another task, cancelled, finished)
    BUSY = "busy"  # queued, but this worker has no free GPU or slot for it now


class WorkerNotRegistered(RuntimeError):
    pass


class _LostRace(Exception):
    pass


@dataclass(frozen=True)
class Claim:
    """What one attempt of a job needs to run and report."""

    job_id: str
    attempt: int
    worker: str
    lease_owner: str
    gpus: tuple[int, ...]
    seq_offset: int  # engine seq N is job seq seq_offset + N
    log_offset: int  # stderr line N is log seq log_offset + N
    kind: JobKind
    spec: dict[str, Any]
    resume_from: str | None
    started_event: dict[str, Any]


def try_claim(
    sessions: sessionmaker[Session], job_id: str, worker: str, lease: timedelta, online_since: datetime
) -> Claim | Refused:
    """Allocate and claim atomically; ``online_since``: workers seen after it count as alive."""
    try:
        with sessions.begin() as session:
            return _claim(session, job_id, worker, lease, online_since)
    except _LostRace:
        return Refused.BUSY


def _claim(session: Session, job_id: str, worker: str, lease: timedelta, online_since: datetime) -> Claim | Refused:
    now = utcnow()
    slots = session.execute(
        update(Worker).where(Worker.id == worker).values(last_seen_at=now).returning(Worker.slots)
    ).scalar_one_or_none()
    if slots is None:
        raise WorkerNotRegistered(f"worker {worker!r} is not in the workers table")
    job = session.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one_or_none()
    if job is None or job.status != JobStatus.QUEUED:
        return Refused.GONE
    gpus = _allocate(session, job, worker, slots, online_since)
    if gpus is None:
        return Refused.BUSY
    owner = f"{worker}/{uuid.uuid4().hex[:12]}"
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            attempt=Job.attempt + 1,
            lease_owner=owner,
            lease_expires_at=now + lease,
            heartbeat_at=now,
            worker_id=worker,
            gpus=list(gpus),
            started_at=now,
            finished_at=None,
            error_code=None,
            error_message=None,
        )
        .returning(Job.attempt, Job.spec, Job.kind, Job.resume_from)
    ).one_or_none()
    if row is None:
        raise _LostRace()
    where = f"GPUs {','.join(map(str, gpus))}" if gpus else "CPU"
    started = record_status(
        session,
        job_id,
        row.attempt,
        "running",
        f"attempt {row.attempt} on {worker} ({where})",
        worker=worker,
        gpus=list(gpus),
        resume_from=row.resume_from,
    )
    log_offset = session.scalar(select(func.coalesce(func.max(LogLine.seq), 0)).where(LogLine.job_id == job_id))
    return Claim(
        job_id=job_id,
        attempt=row.attempt,
        worker=worker,
        lease_owner=owner,
        gpus=gpus,
        seq_offset=int(started["seq"]),
        log_offset=int(log_offset or 0),
        kind=JobKind(row.kind),
        spec=dict(row.spec),
        resume_from=row.resume_from,
        started_event=started,
    )


def _allocate(session: Session, job: Job, worker: str, slots: int, online_since: datetime) -> tuple[int, ...] | None:
    """GPU indices taken for the job (empty on a CPU worker), or None when there is no room now.

    ``slots`` caps the jobs running at once on the worker (its CPU slots, or ``--concurrency`` on a GPU box).
    """
    running = session.scalar(
        select(func.count()).select_from(Job).where(Job.worker_id == worker, Job.status == JobStatus.RUNNING)
    )
    if (running or 0) >= slots:
        return None
    rows = session.scalars(select(Gpu).where(Gpu.worker_id == worker).order_by(Gpu.index).with_for_update()).all()
    if rows:
        free = [gpu for gpu in rows if gpu.job_id is None][: max(1, job.gpu_count)]
        if len(free) < max(1, job.gpu_count):
            return None
        taken = session.execute(
            update(Gpu).where(Gpu.id.in_([gpu.id for gpu in free]), Gpu.job_id.is_(None)).values(job_id=job.id)
        )
        if getattr(taken, "rowcount", 0) != len(free):
            raise _LostRace()
        return tuple(gpu.index for gpu in free)
    if job.gpu_count > 0 and gpu_worker_online(session, online_since):
        return None  # leave GPU jobs to GPU workers while one is alive
    return ()


def gpu_worker_online(session: Session, online_since: datetime) -> bool:
    found = session.scalar(
        select(Gpu.id)
        .join(Worker, Worker.id == Gpu.worker_id)
        .where(Worker.status == "online", Worker.last_seen_at >= online_since)
        .limit(1)
    )
    return found is not None
