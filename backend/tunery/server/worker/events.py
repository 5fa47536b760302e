"""Platform events (type ``status``) numbered after the job's last event, and publishing to watchers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from tunery.server.db.base import utcnow
from tunery.server.db.models import Job, JobEvent

log = logging.getLogger(__name__)


def record_status(
    session: Session, job_id: str, attempt: int, status: str, message: str, **details: Any
) -> dict[str, Any]:
    """Append a ``status`` event (seq = last_seq + 1, in the caller's transaction); returns its message."""
    from tunery.server.live.messages import event_message

    seq = session.execute(
        update(Job).where(Job.id == job_id).values(last_seq=Job.last_seq + 1).returning(Job.last_seq)
    ).scalar_one()
    payload = {"status": status, "message": message, **details}
    now = utcnow()
    session.execute(
        insert(JobEvent).values(job_id=job_id, seq=seq, attempt=attempt, type="status", payload=payload, created_at=now)
    )
    return event_message(seq, "status", attempt, payload, now)


def publish(job_id: str, message: Mapping[str, Any]) -> None:
    """Tell live watchers (after the commit); a failure is logged, the DB row stays the truth."""
    from tunery.server import live

    try:
        live.publish(job_id, message)
    except Exception:
        log.warning("could not publish an event of job %s", job_id, exc_info=True)
