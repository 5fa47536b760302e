"""The watchdog thread of a running attempt: renews the lease, watches cancel and the worker's life.

- every ``heartbeat_seconds``: extend the lease (only while it is still ours; else kill the engine);
- every ``poll_seconds``: read ``cancel_requested`` -> SIGTERM the engine's group (it checkpoints and
  exits), SIGKILL once ``cancel_grace_seconds`` have passed;
- the worker's main process died (we were re-parented) or began a warm shutdown -> stop the engine the same
  way; the job is re-queued from its checkpoint when the engine has exited. (The main process also signals
  every engine on shutdown; this second path does not depend on that handler running.)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

from tunery.server.db.base import utcnow
from tunery.server.db.models import Job, JobStatus
from tunery.server.worker import shutdown
from tunery.server.worker.claim import Claim
from tunery.server.worker.context import WorkerOptions
from tunery.server.worker.engine_process import EngineProcess
from tunery.server.worker.relay import LogRelay

log = logging.getLogger(__name__)


class Watchdog(threading.Thread):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        claim: Claim,
        engine: EngineProcess,
        options: WorkerOptions,
        logs: LogRelay | None = None,
    ) -> None:
        super().__init__(name=f"tunery-watchdog-{claim.job_id}", daemon=True)
        self.sessions, self.claim, self.engine, self.options, self.logs = sessions, claim, engine, options, logs
        self.cancel_requested = False
        self.interrupted = False
        self.lease_lost = False
        self._stopping_since: float | None = None
        self._parent = os.getppid()
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=30)

    def run(self) -> None:
        next_beat = time.monotonic() + self.options.heartbeat_seconds
        while not self._stopped.wait(self.options.poll_seconds):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.options.heartbeat_seconds
                    self.renew_lease()
                else:
                    self.check_cancel()
                self.check_parent()
                self.enforce_grace()
                if self.logs is not None:
                    self.logs.flush()
            except Exception:  # a DB hiccup: the lease has room for a few missed beats
                log.warning("watchdog of job %s: check failed", self.claim.job_id, exc_info=True)

    def renew_lease(self) -> None:
        now = utcnow()
        claim = self.claim
        cancel = self.sessions_scalar(
            update(Job)
            .where(Job.id == claim.job_id, Job.lease_owner == claim.lease_owner, Job.status == JobStatus.RUNNING)
            .values(lease_expires_at=now + timedelta(seconds=self.options.lease_seconds), heartbeat_at=now)
            .returning(Job.cancel_requested)
        )
        if cancel is None:
            self.on_lease_lost()
        elif cancel:
            self.on_cancel()

    def check_cancel(self) -> None:
        if self.cancel_requested:
            return
        cancel = self.sessions_scalar(select(Job.cancel_requested).where(Job.id == self.claim.job_id))
        if cancel:
            self.on_cancel()

    def check_parent(self) -> None:
        if self.interrupted:
            return
        if os.getppid() != self._parent:
            log.warning("worker process gone: stopping job %s to re-queue it", self.claim.job_id)
        elif shutdown.requested():
            log.warning("worker shutting down: stopping job %s to re-queue it", self.claim.job_id)
        else:
            return
        self.interrupted = True
        self._begin_stop()

    def on_cancel(self) -> None:
        if not self.cancel_requested:
            log.info("cancel requested for job %s", self.claim.job_id)
            self.cancel_requested = True
            self._begin_stop()

    def on_lease_lost(self) -> None:
        if not self.lease_lost:
            log.error("job %s: lease lost (re-queued by the reaper?); killing the engine", self.claim.job_id)
            self.lease_lost = True
            self.engine.kill()

    def enforce_grace(self) -> None:
        if self._stopping_since is None or self.engine.poll() is not None:
            return
        if time.monotonic() - self._stopping_since >= self.options.cancel_grace_seconds:
            log.warning("job %s: engine still running after the grace period; SIGKILL", self.claim.job_id)
            self.engine.kill()

    def _begin_stop(self) -> None:
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
            self.engine.terminate()

    def sessions_scalar(self, statement: Executable) -> Any:
        with self.sessions.begin() as session:
            return session.execute(statement).scalar_one_or_none()
