"""Per-process worker state: settings, database and timing options (rebuilt in a forked child)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tunery.server.config import Settings
from tunery.server.db.session import Database


@dataclass(frozen=True)
class WorkerOptions:
    """Timings the worker and reaper use; all derived from the lease unless set in the environment."""

    lease_seconds: float
    heartbeat_seconds: float
    poll_seconds: float
    cancel_grace_seconds: float
    reaper_interval_seconds: float
    dispatch_grace_seconds: float
    claim_wait_seconds: float  # a task waits this long for room, then sends itself to the back of the queue

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> WorkerOptions:
        env = os.environ if env is None else env
        lease = float(settings.lease_seconds)
        reaper = _number(env, "TUNERY_REAPER_INTERVAL_SECONDS", max(1.0, min(30.0, lease / 2)))
        return cls(
            lease_seconds=lease,
            heartbeat_seconds=max(0.5, lease / 3),
            poll_seconds=_number(env, "TUNERY_WORKER_POLL_SECONDS", 1.0),
            cancel_grace_seconds=_number(env, "TUNERY_CANCEL_GRACE_SECONDS", 120.0),
            reaper_interval_seconds=reaper,
            dispatch_grace_seconds=_number(env, "TUNERY_DISPATCH_GRACE_SECONDS", max(10.0, 2 * reaper)),
            claim_wait_seconds=_number(env, "TUNERY_CLAIM_WAIT_SECONDS", 30.0),
        )

    @property
    def silence_limit(self) -> timedelta:
        """A worker not heard from for this long counts as gone."""
        return timedelta(seconds=3 * self.heartbeat_seconds + self.lease_seconds)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise ValueError(f"{name}={text!r} is not a number") from exc
    if value <= 0:
        raise ValueError(f"{name} must be > 0 (got {text})")
    return value


@dataclass
class WorkerContext:
    settings: Settings
    database: Database
    options: WorkerOptions

    @property
    def storage_root(self) -> Path:
        return self.settings.storage_root

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerContext:
        return cls(settings, Database.from_settings(settings), WorkerOptions.from_settings(settings))


_lock = threading.Lock()
_current: tuple[int, WorkerContext] | None = None


def get_context() -> WorkerContext:
    """This process's context from the environment; a forked child builds its own database engine."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            if _current is not None:
                _current[1].database.engine.dispose(close=False)  # the parent's connections stay the parent's
            _current = (os.getpid(), WorkerContext.from_settings(Settings.from_env()))
        return _current[1]


def set_context(context: WorkerContext | None) -> None:
    """Use ``context`` in this process (tests, or a command that already built its settings)."""
    global _current
    with _lock:
        _current = None if context is None else (os.getpid(), context)
