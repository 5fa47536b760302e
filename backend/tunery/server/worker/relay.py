"""Relaying the engine's stdout events into the DB (idempotent on job+seq) and to live watchers.

Each event is one transaction that first updates the job row *where the lease is still ours*: that row
lock orders the writes, and a worker that lost its lease (the reaper re-queued the job) writes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import case, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tunery.server.db.base import utcnow
from tunery.server.db.models import Checkpoint, Job, JobEvent, JobStatus, Metric
from tunery.server.worker.checkpoints import relative_to_root
from tunery.server.worker.claim import Claim
from tunery.server.worker.events import publish
from tunery.server.worker.jobfile import resolve_stored_path
from tunery.server.worker.outcomes import store_best_checkpoint, store_eval_result, store_finished
from tunery.server.worker.sql import insert_ignore, upsert
from tunery.spec.events import (
    ArtifactEvent,
    BestCheckpointEvent,
    CheckpointEvent,
    EvalEvent,
    EvalResultEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    ProgressEvent,
    parse_event,
)

log = logging.getLogger(__name__)

PROGRESS_METRICS = ("loss", "lr", "grad_norm", "epoch", "tokens_per_second")
TAIL_LINES = 15
REDACTED = "[redacted]"
Publisher = Callable[[str, Mapping[str, Any]], None]


class LeaseLost(Exception):
    """The job's lease belongs to someone else now: this attempt must stop without writing."""


def with_retries(action: Callable[[], Any], attempts: int = 30, delay: float = 1.0) -> Any:
    """Run a DB action, retrying while the database is unreachable (a restart) for about ``attempts`` s."""
    for attempt in range(attempts):
        try:
            return action()
        except OperationalError:
            if attempt == attempts - 1:
                raise
            log.warning("database unavailable; retrying", exc_info=True)
            time.sleep(delay)
    return None


class EventRelay:
    """Feeds on stdout lines; keeps the terminal event (finished/failed) for the end of the run."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        claim: Claim,
        storage_root: Path,
        publisher: Publisher = publish,
        hidden: Sequence[str] = (),
    ) -> None:
        self.sessions, self.claim, self.storage_root, self.publisher = sessions, claim, storage_root, publisher
        self.hidden = tuple(value for value in hidden if value)
        self.terminal: FinishedEvent | FailedEvent | None = None
        #: this attempt's complete outputs (an export registers exactly these if the attempt succeeds)
        self.artifacts: list[ArtifactEvent] = []

    def feed(self, text: str) -> str | None:
        """Relay an event line; returns the text when it is not an event (it then belongs in the log)."""
        if not text.strip():
            return None
        text = redact_values(text, self.hidden)
        try:
            event = parse_event(text)
        except (ValidationError, ValueError):
            return text
        self.relay(event)
        return None

    def relay(self, event: Event) -> None:
        seq = self.claim.seq_offset + event.seq
        payload = event.model_dump(mode="json", exclude={"seq", "type"})
        with_retries(lambda: self._store(event, seq, payload))
        if isinstance(event, FinishedEvent | FailedEvent):
            self.terminal = event
        elif isinstance(event, ArtifactEvent):
            self.artifacts.append(event)
        from tunery.server.live.messages import event_message

        self.publisher(self.claim.job_id, event_message(seq, event.type, self.claim.attempt, payload))

    def _store(self, event: Event, seq: int, payload: dict[str, Any]) -> None:
        claim = self.claim
        values: dict[str, Any] = {
            "last_seq": case((Job.last_seq < seq, seq), else_=Job.last_seq),
            "heartbeat_at": utcnow(),
        }
        if isinstance(event, ProgressEvent):
            values["progress"] = payload
        with self.sessions.begin() as session:
            fenced = session.execute(
                update(Job)
                .where(Job.id == claim.job_id, Job.lease_owner == claim.lease_owner, Job.status == JobStatus.RUNNING)
                .values(**values)
            )
            if not getattr(fenced, "rowcount", 0):
                raise LeaseLost(claim.job_id)
            row = {"job_id": claim.job_id, "seq": seq, "attempt": claim.attempt, "type": event.type, "payload": payload}
            if not insert_ignore(session, JobEvent, row, keys=("job_id", "seq")):
                return  # already relayed
            if isinstance(event, ProgressEvent):
                metrics = {key: payload[key] for key in PROGRESS_METRICS if payload.get(key) is not None}
                metrics.update(event.metrics)  # the stage's own (rewards/accuracies, kl, ...)
                store_metrics(session, claim.job_id, event.step, claim.attempt, metrics)
            elif isinstance(event, EvalEvent):
                store_metrics(session, claim.job_id, event.step, claim.attempt, dict(event.metrics))
            elif isinstance(event, CheckpointEvent):
                self._store_checkpoint(session, event)
            elif isinstance(event, BestCheckpointEvent):
                store_best_checkpoint(session, self.storage_root, claim.job_id, event)
            elif isinstance(event, EvalResultEvent):
                store_eval_result(session, self.storage_root, claim.job_id, claim.attempt, event)
            elif isinstance(event, FinishedEvent):
                store_finished(session, self.storage_root, claim.job_id, event)
                mark_deleted_checkpoints(session, self.storage_root, claim.job_id)  # the trainer's last rotation

    def _store_checkpoint(self, session: Session, event: CheckpointEvent) -> None:
        job_id = self.claim.job_id
        path = relative_to_root(self.storage_root, Path(event.path))
        upsert(
            session,
            Checkpoint,
            {"job_id": job_id, "step": event.step, "path": path, "deleted": False},
            keys=("job_id", "step"),
            update=("path", "deleted"),
        )
        mark_deleted_checkpoints(session, self.storage_root, job_id)


def mark_deleted_checkpoints(session: Session, storage_root: Path, job_id: str) -> None:
    """Checkpoints whose folder is gone were removed by save_total_limit."""
    for row in session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.deleted.is_(False))):
        if not resolve_stored_path(storage_root, row.path).exists():
            row.deleted = True


def store_metrics(session: Session, job_id: str, step: int, attempt: int, values: dict[str, Any]) -> None:
    """One row per (job, step): a later attempt replaces the step, the same attempt merges into it."""
    row = session.scalar(select(Metric).where(Metric.job_id == job_id, Metric.step == step))
    if row is None:
        session.add(Metric(job_id=job_id, step=step, attempt=attempt, values=values))
    elif row.attempt == attempt:
        row.values = {**row.values, **values}
    else:
        row.attempt, row.values = attempt, values


def redact_values(text: str, hidden: Sequence[str]) -> str:
    """``text`` with every secret value the engine was given replaced (they are never stored)."""
    for value in hidden:
        text = text.replace(value, REDACTED)
    return text


class LogRelay:
    """Stores stderr lines (and stray stdout text) in job_log_lines, in small batches."""

    MAX_LINE = 8000

    def __init__(
        self,
        sessions: sessionmaker[Session],
        claim: Claim,
        batch: int = 200,
        every: float = 0.5,
        hidden: Sequence[str] = (),
    ) -> None:
        self.sessions, self.claim, self.batch, self.every = sessions, claim, batch, every
        self.hidden = tuple(value for value in hidden if value)
        self._pending: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)  # for the error message of a crashed engine
        self._count = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()  # the stderr reader adds, the watchdog flushes now and then

    def add(self, text: str) -> None:
        line = redact_values(text, self.hidden).rstrip("\n").split("\r")[-1].rstrip()  # a progress bar's last state
        if not line:
            return
        with self._lock:
            self._pending.append(line[: self.MAX_LINE])
            self.tail.append(line[: self.MAX_LINE])
            due = len(self._pending) >= self.batch or time.monotonic() - self._last_flush >= self.every
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._last_flush = time.monotonic()
            if not self._pending:
                return
            lines, self._pending = self._pending, []
            first = self._count
            self._count += len(lines)
        try:
            with_retries(lambda: self._write(first, lines), attempts=5)
        except Exception:
            log.warning("dropped %d log lines of job %s", len(lines), self.claim.job_id, exc_info=True)

    def _write(self, first: int, lines: list[str]) -> None:
        from tunery.server.db.models import LogLine

        claim = self.claim
        with self.sessions.begin() as session:
            for number, line in enumerate(lines, start=first + 1):
                row = {"job_id": claim.job_id, "seq": claim.log_offset + number, "attempt": claim.attempt, "line": line}
                insert_ignore(session, LogLine, row, keys=("job_id", "seq"))
