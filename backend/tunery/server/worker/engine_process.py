"""The engine subprocess: ``python -m tunery.cli.main train job.yaml --events -`` in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

ENGINE_MODULE = "tunery.cli.main"
LAUNCHER_MODULE = "tunery.server.worker.launch"


def engine_command(command: str, job_file: Path, extra: Sequence[str] = ()) -> list[str]:
    """The engine CLI, exec'ed through the launcher so that it gets SIGTERM if this process dies."""
    engine = [sys.executable, "-m", ENGINE_MODULE, command, str(job_file), "--events", "-", *extra]
    return [sys.executable, "-m", LAUNCHER_MODULE, str(os.getpid()), "--", *engine]


def engine_env(gpus: tuple[int, ...], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment without the service's settings (URLs with passwords, the secret key), with
    only the allocated GPUs visible (none on a CPU slot)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TUNERY_")}
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in gpus)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class EngineProcess:
    """One engine run; it leads its own process group (start_new_session), which is signalled as a whole."""

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.argv, self.env, self.cwd = argv, dict(env), cwd
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError("engine not started")
        return self._popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> IO[bytes]:
        assert self.popen.stdout is not None
        return self.popen.stdout

    @property
    def stderr(self) -> IO[bytes]:
        assert self.popen.stderr is not None
        return self.popen.stderr

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, signum: int) -> None:
        """Signal every process of the engine's group (the engine, its data loaders, compilers...)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def terminate(self) -> None:
        self.signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)

    def ensure_gone(self, timeout: float = 10.0) -> None:
        """Kill whatever is left of the group (and any child that left it) and reap the engine."""
        leftovers = _descendants(self.pid)
        self.kill()
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.wait(timeout)
        psutil.wait_procs(leftovers, timeout=timeout)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def stop_gracefully(engine: EngineProcess, grace_seconds: float, poll: float = 0.2) -> bool:
    """SIGTERM the group, wait up to ``grace_seconds`` for the engine to exit, then SIGKILL; True if it exited."""
    engine.terminate()
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if engine.poll() is not None:
            return True
        time.sleep(poll)
    engine.kill()
    return False
