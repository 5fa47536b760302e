"""Real processes for the worker tests: a private Redis, `tunery worker` / `tunery scheduler` processes,
jobs on the tiny model, and polling helpers (a timeout only bounds a wait; nothing asserts durations)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from sqlalchemy import select

from tests.support.tiny_models import SHARED_DATA
from tunery.server.config import Settings
from tunery.server.db.base import utcnow
from tunery.server.db.models import Job, JobEvent, JobStatus, Metric, Project
from tunery.server.db.session import Database
from tunery.server.worker.claim import Claim, try_claim
from tunery.server.worker.registry import WorkerIdentity, announce
from tunery.spec import JobSpec

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
ENGINE_MARK = "tunery.cli.main"
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
TRAINING_TIMEOUT = 600  # bounds a wait on a busy 2-core machine; nothing asserts durations


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class RedisServer:
    """A private redis-server (no persistence, like the default test service) that a test may restart."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(argv, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, 20, "redis-server to start")

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn,
        ):
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def service_env(home: Path, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """Environment of the service processes: short lease and quick polls so recoveries happen fast."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNERY_")}
    env.update(
        TUNERY_HOME=str(home),
        TUNERY_DATABASE_URL=database_url,
        TUNERY_BROKER_URL=broker_url,
        TUNERY_SECRET_KEY="worker-test-secret",
        TUNERY_LEASE_SECONDS="4",
        TUNERY_WORKER_POLL_SECONDS="0.2",
        TUNERY_CANCEL_GRACE_SECONDS="60",
        TUNERY_CLAIM_WAIT_SECONDS="3",
        TUNERY_REAPER_INTERVAL_SECONDS="1",
        TUNERY_DISPATCH_GRACE_SECONDS="3",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


class ServiceProcess:
    """``python -m tunery.server.cli_processes COMMAND ...`` with its output in a log file."""

    def __init__(self, env: Mapping[str, str], log: Path, *args: str) -> None:
        self.log = log
        handle = log.open("ab")
        argv = [sys.executable, "-m", "tunery.server.cli_processes", *args]
        self.process = subprocess.Popen(argv, env=dict(env), cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [
                psutil.Process(self.pid),
                *psutil.Process(self.pid).children(recursive=True),
            ]
        return []

    def kill9(self, keep: Callable[[psutil.Process], bool] = lambda p: False) -> None:
        """SIGKILL the process and its descendants (except those ``keep`` spares), all at once."""
        victims = [process for process in self.tree() if not keep(process)]
        for process in victims:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
        self.process.wait(20)  # reaped here, so that its exit status is kept
        psutil.wait_procs([p for p in victims if p.pid != self.pid], timeout=20)

    def stop(self, timeout: float = 120) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.process.poll()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def interesting_output(self) -> str:
        """The log without the once-a-second reaper lines."""
        noise = ("tunery.reap[", "Sending due task reap")
        return "".join(line for line in self.output().splitlines(True) if not any(n in line for n in noise))


def engine_processes(storage_root: Path) -> list[psutil.Process]:
    """Engine processes working on job files under ``storage_root`` (other people's runs are ignored)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if any(ENGINE_MARK in part for part in cmdline) and any(str(storage_root) in part for part in cmdline):
            found.append(process)
    return found


def is_engine(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return any(ENGINE_MARK in part for part in process.cmdline())
    return False


def tiny_spec(model_dir: Path, **keys: Any) -> dict[str, Any]:
    """The stored (nested) spec of a LoRA SFT job on the tiny model and the demo `identity` data."""
    flat: dict[str, Any] = {
        "model_name_or_path": str(model_dir),
        "dataset": "identity",
        "dataset_dir": str(SHARED_DATA),
        "template": "llama3",
        "stage": "sft",
        "finetuning_type": "lora",
        "output_dir": "unused",  # the worker points it at jobs/<id>/output
        "per_device_train_batch_size": 2,
        "max_steps": 6,
        "logging_steps": 1,
        "save_steps": 2,
        "cutoff_len": 64,
        "max_samples": 32,
        "disable_gradient_checkpointing": True,
        "use_cpu": True,
        "lr_scheduler_type": "constant",
        "seed": 7,
    }
    flat.update(keys)
    return JobSpec.from_mapping(flat).model_dump(mode="json")


def new_project(database: Database) -> str:
    with database.session() as session:
        project = Project(name="worker tests", slug=f"worker-tests-{os.urandom(4).hex()}")
        session.add(project)
        session.commit()
        return project.id


def new_job(database: Database, project_id: str, spec: dict[str, Any], **values: Any) -> str:
    with database.session() as session:
        values.setdefault("gpu_count", 0)
        values.setdefault("status", JobStatus.QUEUED)
        job = Job(project_id=project_id, spec=spec, **values)
        session.add(job)
        session.commit()
        return job.id


def job_row(database: Database, job_id: str) -> Job:
    with database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def job_in(database: Database, job_id: str, *statuses: JobStatus) -> Job | None:
    job = job_row(database, job_id)
    return job if job.status in statuses else None


def events(database: Database, job_id: str) -> list[JobEvent]:
    with database.session() as session:
        rows = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)))
        session.expunge_all()
        return rows


def metric_steps(database: Database, job_id: str) -> list[int]:
    with database.session() as session:
        return list(session.scalars(select(Metric.step).where(Metric.job_id == job_id).order_by(Metric.step)))


class Stack:
    """The service around the test: settings/env of its processes, its database, the processes it started."""

    def __init__(self, folder: Path, database_url: str, broker_url: str, **extra_env: str) -> None:
        self.folder = folder
        self.home = folder / "home"
        self.env = service_env(self.home, database_url, broker_url, **extra_env)
        self.settings = Settings.from_env(self.env)
        self.database = Database.from_settings(self.settings)
        self.processes: list[ServiceProcess] = []

    @property
    def storage_root(self) -> Path:
        return self.settings.storage_root

    def start(self, *args: str, log_name: str | None = None) -> ServiceProcess:
        name = log_name or "-".join(args).replace("/", "_")
        process = ServiceProcess(self.env, self.folder / f"{name}.log", *args)
        self.processes.append(process)
        return process

    def worker(self, name: str, concurrency: int = 1, queues: str = "gpu,default") -> ServiceProcess:
        args = (
            "worker",
            "--name",
            name,
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
        )
        return self.start(*args, log_name=f"worker-{name}")

    def wait_online(self, name: str, timeout: float = 120) -> None:
        """Until the worker's Celery consumer is ready (it logs 'ready.')."""
        process = next(p for p in self.processes if p.log.name == f"worker-{name}.log")
        wait_for(lambda: "ready." in process.output(), timeout, f"worker {name} to be ready")

    def enqueue(self, job_id: str) -> None:
        from tunery.server.worker.queue import enqueue_job

        enqueue_job(job_id, settings=self.settings)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        for process in self.processes:  # shown by pytest when the test failed
            sys.stdout.write(f"\n----- {process.log.name} -----\n{process.interesting_output()[-8000:]}\n")
        truncate_all(self.database)
        self.database.dispose()


@contextlib.contextmanager
def relay_stack(tmp_path: Path, pg_url: str) -> Iterator[Stack]:
    """A database and storage root with one announced worker ``w`` (4 CPU slots, no broker): enough to claim
    jobs and feed recorded event streams through the relay."""
    stack = Stack(tmp_path, pg_url, "redis://127.0.0.1:1/0")
    announce(stack.database.sessions, WorkerIdentity("w", ("gpu",), (), 4))
    try:
        yield stack
    finally:
        stack.close()


def claim_as_w(stack: Stack, job_id: str) -> Claim:
    """Worker ``w`` claims the queued job (a 30 s lease)."""
    result = try_claim(stack.database.sessions, job_id, "w", timedelta(seconds=30), utcnow())
    assert isinstance(result, Claim)
    return result


def truncate_all(database: Database) -> None:
    from sqlalchemy import text

    from tunery.server.db.base import Base

    if database.engine.dialect.name != "postgresql":
        return
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
