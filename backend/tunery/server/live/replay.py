"""Reading a job's events back from the database (replay, polling, the events endpoint)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.db.models import Job, JobEvent, JobStatus
from tunery.server.live.messages import event_message

SessionFactory = Callable[[], Session]


def load_events(session: Session, job_id: str, after_seq: int, limit: int = 500) -> list[dict[str, Any]]:
    """Events with ``seq > after_seq`` in order, at most ``limit``."""
    rows = session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq).order_by(JobEvent.seq).limit(limit)
    ).all()
    return [event_message(row.seq, row.type, row.attempt, row.payload, row.created_at) for row in rows]


def job_status(session: Session, job_id: str) -> JobStatus | None:
    return session.scalar(select(Job.status).where(Job.id == job_id))


def read_events(factory: SessionFactory, job_id: str, after_seq: int, limit: int = 500) -> list[dict[str, Any]]:
    with factory() as session:
        return load_events(session, job_id, after_seq, limit)


def read_status(factory: SessionFactory, job_id: str) -> JobStatus | None:
    with factory() as session:
        return job_status(session, job_id)
