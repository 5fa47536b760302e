"""The reaper (periodic, also callable directly): the DB is the truth, the broker only a wake-up call.

- running jobs whose lease expired (dead worker): a new attempt resuming from the newest complete
  checkpoint, or ``failed`` (``too_many_attempts``) after ``max_attempts``; their GPUs are freed;
- workers silent for long: ``offline``;
- queued jobs nobody took although a live worker has room (their message was lost, e.g. a Redis restart
  without persistence): sent again, at most once per ``dispatch_grace_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tunery.server.db.base import utcnow
from tunery.server.db.models import Gpu, Job, JobStatus, Worker
from tunery.server.worker.context import WorkerContext
from tunery.server.worker.events import publish
from tunery.server.worker.registry import mark_silent_workers_offline
from tunery.server.worker.requeue import requeue_or_fail

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str], None]


@dataclass
class ReapReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    redispatched: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return asdict(self)


def reap(context: WorkerContext, now: datetime | None = None, enqueue: Enqueue | None = None) -> ReapReport:
    from tunery.server.worker.queue import enqueue_job

    def send_to_broker(job_id: str, queue: str) -> None:
        enqueue_job(job_id, queue, context.settings)

    send = send_to_broker if enqueue is None else enqueue
    now = now or utcnow()
    options, sessions = context.options, context.database.sessions
    report = ReapReport()
    online_since = now - options.silence_limit
    with sessions.begin() as session:
        report.offline = mark_silent_workers_offline(session, now, options.silence_limit)
        expired = session.execute(
            select(Job.id, Job.worker_id).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
        ).all()
    for job_id, worker in expired:
        guard = [Job.status == JobStatus.RUNNING, Job.lease_expires_at < now]
        message = f"lease expired: worker {worker} stopped renewing it"
        with sessions.begin() as session:
            moved = requeue_or_fail(session, context.storage_root, job_id, guard, "lease_expired", message, now)
        if moved is None:
            continue
        log.warning("job %s: %s", job_id, moved.message["message"])
        publish(job_id, moved.message)
        (report.requeued if moved.enqueue else report.failed).append(job_id)
        if moved.enqueue:
            _send(send, job_id, moved.queue)
    with sessions.begin() as session:
        lost = find_undelivered(session, now, timedelta(seconds=options.dispatch_grace_seconds), online_since)
    for job_id, queue in lost:
        log.warning("job %s queued with no taker while a worker has room: sending it again", job_id)
        _send(send, job_id, queue)
        report.redispatched.append(job_id)
    return report


def _send(send: Enqueue, job_id: str, queue: str) -> None:
    try:
        send(job_id, queue)
    except Exception:  # the broker is down: the next round tries again
        log.warning("could not enqueue job %s", job_id, exc_info=True)


def find_undelivered(
    session: Session, now: datetime, grace: timedelta, online_since: datetime
) -> list[tuple[str, str]]:
    """Queued jobs older than ``grace`` that a live worker has room for; marks them as sent (for ``grace``)."""
    room, gpu_worker_online = _room_by_worker(session, online_since)
    if not room:
        return []
    jobs = session.scalars(
        select(Job)
        .where(
            Job.status == JobStatus.QUEUED,
            func.coalesce(Job.queued_at, Job.created_at) < now - grace,
            or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now),
        )
        .order_by(func.coalesce(Job.queued_at, Job.created_at))
        .with_for_update(skip_locked=True)
    ).all()
    chosen = []
    for job in jobs:
        for name, (queues, free_gpus, free_slots) in room.items():
            if job.queue not in queues:
                continue
            if free_gpus >= max(1, job.gpu_count) or (free_slots > 0 and (job.gpu_count == 0 or not gpu_worker_online)):
                room[name] = (queues, free_gpus - max(1, job.gpu_count), free_slots - 1)
                job.lease_expires_at = now + grace  # "sent; wait before sending again"
                chosen.append((job.id, job.queue))
                break
    return chosen


def _room_by_worker(session: Session, online_since: datetime) -> tuple[dict[str, tuple[list[str], int, int]], bool]:
    """Live workers with room -> (queues, free GPUs, free CPU slots); and whether any live worker has GPUs."""
    workers = session.scalars(select(Worker).where(Worker.status == "online", Worker.last_seen_at >= online_since))
    room: dict[str, tuple[list[str], int, int]] = {}
    any_gpus = False
    for worker in workers:
        gpus = session.execute(select(Gpu.job_id).where(Gpu.worker_id == worker.id)).scalars().all()
        running = session.scalar(
            select(func.count()).select_from(Job).where(Job.worker_id == worker.id, Job.status == JobStatus.RUNNING)
        )
        free_slots = worker.slots - int(running or 0)
        if gpus:
            any_gpus = True
            free_gpus = sum(1 for job in gpus if job is None) if free_slots > 0 else 0
            room[worker.id] = (list(worker.queues), free_gpus, 0)
        else:
            room[worker.id] = (list(worker.queues), 0, free_slots)
    return {name: value for name, value in room.items() if value[1] > 0 or value[2] > 0}, any_gpus
