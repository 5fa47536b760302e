"""The workers table: a worker announces itself and its GPUs, heartbeats, and goes offline on exit."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from tunery.server.db.base import utcnow
from tunery.server.db.models import Gpu, Job, JobStatus, Worker
from tunery.server.worker.gpus import GpuInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerIdentity:
    """Who this worker is: its name (unique in the fleet), queues, GPUs, and how many jobs it runs at once
    (its CPU slots when it has no GPU; at most one job per GPU otherwise)."""

    name: str
    queues: tuple[str, ...]
    gpus: tuple[GpuInfo, ...] = ()
    slots: int = 1
    hostname: str = field(default_factory=socket.gethostname)


def announce(
    sessions: sessionmaker[Session], identity: WorkerIdentity, *, fresh_start: bool = True, now: datetime | None = None
) -> None:
    """Insert or refresh the worker row and its GPU rows.

    On a fresh start, jobs still leased to a previous process of the same name are given up at once (their
    lease expires now), so the reaper re-queues them without waiting: a name runs one worker at a time.
    """
    now = now or utcnow()
    slots = min(identity.slots, len(identity.gpus)) if identity.gpus else identity.slots
    with sessions.begin() as session:
        worker = session.get(Worker, identity.name, with_for_update=True)
        if worker is None:
            worker = Worker(id=identity.name, hostname=identity.hostname, last_seen_at=now)
            session.add(worker)
        worker.hostname, worker.queues, worker.slots = identity.hostname, list(identity.queues), slots
        worker.last_seen_at, worker.status = now, "online"
        session.flush()
        _sync_gpus(session, identity)
        if not fresh_start:
            return
        session.execute(
            update(Job)
            .where(Job.worker_id == identity.name, Job.status == JobStatus.RUNNING)
            .values(lease_expires_at=now)
        )


def _sync_gpus(session: Session, identity: WorkerIdentity) -> None:
    rows = {gpu.index: gpu for gpu in session.scalars(select(Gpu).where(Gpu.worker_id == identity.name))}
    for info in identity.gpus:
        row = rows.pop(info.index, None)
        if row is None:
            session.add(Gpu(worker_id=identity.name, index=info.index, name=info.name, memory_mb=info.memory_mb))
        else:
            row.name, row.memory_mb = info.name, info.memory_mb
    gone = [row.id for row in rows.values()]
    if gone:
        session.execute(delete(Gpu).where(Gpu.id.in_(gone)))


def heartbeat(sessions: sessionmaker[Session], name: str, now: datetime | None = None) -> bool:
    """Mark the worker alive; False when its row is gone (it is then announced again by the caller)."""
    with sessions.begin() as session:
        result = session.execute(
            update(Worker).where(Worker.id == name).values(last_seen_at=now or utcnow(), status="online")
        )
        return bool(getattr(result, "rowcount", 0))


def go_offline(sessions: sessionmaker[Session], name: str) -> None:
    with sessions.begin() as session:
        session.execute(update(Worker).where(Worker.id == name).values(status="offline", last_seen_at=utcnow()))


def mark_silent_workers_offline(session: Session, now: datetime, silent_for: timedelta) -> list[str]:
    """Workers not seen for ``silent_for`` are offline (their jobs' leases expire on their own)."""
    names = list(
        session.scalars(
            update(Worker)
            .where(Worker.status == "online", Worker.last_seen_at < now - silent_for)
            .values(status="offline")
            .returning(Worker.id)
        )
    )
    return names


class WorkerHeartbeat(threading.Thread):
    """Background thread of the worker's main process: refreshes ``last_seen_at`` every ``interval``."""

    def __init__(self, sessions: sessionmaker[Session], identity: WorkerIdentity, interval: float) -> None:
        super().__init__(name="tunery-worker-heartbeat", daemon=True)
        self.sessions, self.identity, self.interval = sessions, identity, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if not heartbeat(self.sessions, self.identity.name):
                    announce(self.sessions, self.identity, fresh_start=False)
            except Exception:  # the database may be restarting: try again next beat
                log.warning("worker heartbeat failed", exc_info=True)

    def stop(self) -> None:
        self.stopped.set()
