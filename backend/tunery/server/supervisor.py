"""Supervising child processes (``tunery up``): start them, restart one that dies, stop all on a signal.

Each child leads its own process group, so Ctrl-C reaches only the supervisor, which then stops the
children in order: SIGTERM, a grace period, then SIGKILL for whatever is left of each child's tree.
Children are started through the launcher, so they get SIGTERM too if the supervisor is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import psutil

LAUNCHER = "tunery.server.worker.launch"  # exec's the child with a parent-death signal (SIGTERM)


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: Mapping[str, str] | None = None
    stop_timeout: float = 15.0


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay: float = 1.0
    restarts: int = 0
    tree: list[psutil.Process] = field(default_factory=list)


class Supervisor:
    """Keeps ``specs`` running; ``run(stop)`` returns once ``stop`` is set and every child is gone."""

    MAX_DELAY = 30.0
    STABLE_AFTER = 10.0  # a child that ran this long restarts quickly again

    def __init__(self, specs: Sequence[ChildSpec], out: TextIO, poll_seconds: float = 0.5) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.out = out
        self.poll_seconds = poll_seconds

    def _say(self, text: str) -> None:
        self.out.write(f"[tunery up] {text}\n")
        self.out.flush()

    def _start(self, child: _Child) -> None:
        env = dict(os.environ if child.spec.env is None else child.spec.env)
        argv = [sys.executable, "-m", LAUNCHER, str(os.getpid()), "--", *child.spec.argv]
        child.process = subprocess.Popen(argv, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        child.started_at, child.restart_at = time.monotonic(), None

    def start(self) -> None:
        for child in self.children:
            self._start(child)

    def check(self) -> None:
        """Restart children that exited (with a growing delay when they keep dying at once)."""
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._say(f"restarting {child.spec.name}")
                    self._start(child)
                continue
            if process is None or process.poll() is None:
                continue
            quick = now - child.started_at < self.STABLE_AFTER
            child.delay = min(self.MAX_DELAY, child.delay * 2) if quick else 1.0
            _kill_group(process.pid)  # leftovers of the dead child (e.g. worker pool processes)
            self._say(f"{child.spec.name} exited with {process.returncode}; restarting in {child.delay:.0f}s")
            child.restart_at = now + child.delay

    def run(self, stop: threading.Event) -> int:
        try:
            while not stop.wait(self.poll_seconds):
                self.check()
        finally:
            self.stop_all()
        return 0

    def stop_all(self) -> None:
        """SIGTERM every child (their trees stay alive until their leaders let go), then wait and kill."""
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.tree = _tree(child.process.pid)
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        for child in self.children:
            process = child.process
            if process is None:
                continue
            try:
                process.wait(child.spec.stop_timeout)
            except subprocess.TimeoutExpired:
                self._say(f"{child.spec.name} did not stop in {child.spec.stop_timeout:.0f}s; killing it")
            child.tree = [*child.tree, *_tree(process.pid)]
            _kill_group(process.pid)
            for leftover in child.tree:
                with contextlib.suppress(psutil.Error):
                    leftover.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
            psutil.wait_procs(child.tree, timeout=5)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stop`` (call from the main thread)."""

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
