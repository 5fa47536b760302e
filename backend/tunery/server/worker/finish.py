"""The end of an attempt: decide the outcome, register artifacts, free the GPUs, write the status."""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tunery.server.db.base import utcnow
from tunery.server.db.models import Job, JobStatus
from tunery.server.worker.artifacts import FoundArtifact, event_artifacts, register_artifacts, scan_output
from tunery.server.worker.claim import Claim
from tunery.server.worker.events import publish, record_status
from tunery.server.worker.requeue import release_gpus, requeue_or_fail
from tunery.spec.events import EXIT_INVALID, EXIT_SUCCEEDED, ArtifactEvent, FailedEvent, FinishedEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """``status`` None: the attempt was interrupted and the job goes back to the queue."""

    status: JobStatus | None
    message: str
    error_code: str | None = None


def decide(
    terminal: FinishedEvent | FailedEvent | None,
    returncode: int | None,
    *,
    cancel_requested: bool,
    interrupted: bool,
    stderr_tail: Sequence[str] = (),
) -> Outcome:
    """The job's status from the engine's last event and exit code, and why the engine was stopped."""
    if isinstance(terminal, FailedEvent):
        return Outcome(JobStatus.FAILED, terminal.message, terminal.code)
    if isinstance(terminal, FinishedEvent) and terminal.outcome == "succeeded" and returncode == EXIT_SUCCEEDED:
        return Outcome(JobStatus.SUCCEEDED, f"succeeded at step {terminal.step}")
    if isinstance(terminal, FinishedEvent) and terminal.outcome == "cancelled":
        where = f" (checkpoint {terminal.checkpoint})" if terminal.checkpoint else ""
        if cancel_requested:
            return Outcome(JobStatus.CANCELLED, f"cancelled at step {terminal.step}{where}")
        return Outcome(None, f"attempt stopped at step {terminal.step}{where}")
    if cancel_requested:
        return Outcome(JobStatus.CANCELLED, "cancelled; the engine was stopped before it reported")
    if interrupted or returncode == -signal.SIGTERM:
        return Outcome(None, "attempt stopped before the engine reported")
    last_words = "\n".join(stderr_tail)
    if returncode == EXIT_INVALID:  # refused before it could report (e.g. a spec error from the command line)
        return Outcome(JobStatus.FAILED, last_words or "the engine refused the job file", "invalid_spec")
    how = f"was killed by signal {-returncode}" if returncode is not None and returncode < 0 else f"exited {returncode}"
    message = f"the engine {how} without reporting an outcome"
    return Outcome(
        JobStatus.FAILED, f"{message}; its last lines:\n{last_words}" if last_words else message, "engine_crashed"
    )


def collect_artifacts(
    storage_root: Path,
    outcome: Outcome,
    output_dir: Path,
    events: Sequence[ArtifactEvent] | None = None,
    lineage: dict[str, Any] | None = None,
) -> list[FoundArtifact]:
    """Hash the outputs of a succeeded attempt (slow for big models: do it while the lease is renewed): what
    its ``artifact`` events named when ``events`` is given (exports), else the output folder's files."""
    if outcome.status != JobStatus.SUCCEEDED:
        return []
    if events is not None:
        return event_artifacts(storage_root, output_dir, events, lineage or {})
    return scan_output(storage_root, output_dir)


def finish_attempt(
    sessions: sessionmaker[Session],
    storage_root: Path,
    claim: Claim,
    outcome: Outcome,
    found: list[FoundArtifact] | None = None,
) -> str:
    """Write the attempt's outcome (only while the lease is ours); returns the job's status now."""
    from tunery.server.worker.queue import enqueue_job

    now = utcnow()
    ours = [Job.status == JobStatus.RUNNING, Job.lease_owner == claim.lease_owner]
    enqueue: str | None = None  # the queue to send the job to again
    with sessions.begin() as session:
        if outcome.status is None:
            moved = requeue_or_fail(
                session, storage_root, claim.job_id, ours, "interrupted", outcome.message, now, counts=False
            )
            if moved is None:
                return "lease_lost"
            event, enqueue = moved.message, moved.queue if moved.enqueue else None
        else:
            done = session.execute(
                update(Job)
                .where(Job.id == claim.job_id, *ours)
                .values(
                    status=outcome.status,
                    finished_at=now,
                    error_code=outcome.error_code,
                    error_message=outcome.message if outcome.error_code else None,
                    lease_expires_at=None,
                    heartbeat_at=now,
                )
            )
            if not getattr(done, "rowcount", 0):
                return "lease_lost"
            release_gpus(session, claim.job_id)
            register_artifacts(session, claim.job_id, found or [])
            details = {"error_code": outcome.error_code} if outcome.error_code else {}
            event = record_status(
                session, claim.job_id, claim.attempt, outcome.status.value, outcome.message, **details
            )
        status = str(event["status"])
    publish(claim.job_id, event)
    if enqueue is not None:
        try:
            enqueue_job(claim.job_id, enqueue)
        except Exception:  # the job stays queued; the reaper sends it again
            log.warning("could not enqueue job %s again", claim.job_id, exc_info=True)
    return status
