"""`tunery up` on the embedded default (SQLite + the SQLAlchemy kombu transport), driven through the HTTP API."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.server.worker_support import ROOT, engine_processes, free_port, wait_for
from tests.support.tiny_models import SHARED_DATA
from tunery.server.auth.tokens import issue_token
from tunery.server.config import Settings
from tunery.server.db.session import Database
from tunery.server.services.users import create_user

TERMINAL = ("succeeded", "failed", "cancelled")
TRAINING_TIMEOUT = 600  # bounds a wait on a busy 2-core machine; nothing asserts durations


class Up:
    """One `tunery up` process (python -m tunery.server.cli_processes up) and its output."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.log, self.port = log, port
        argv = [sys.executable, "-m", "tunery.server.cli_processes", "up", "--port", str(port)]
        self.process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = wait_for(self._url, 120, "tunery up to print its URL")
        wait_for(self._answers, 120, "the API to answer")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def _url(self) -> str | None:
        if self.process.poll() is not None:
            pytest.fail(f"tunery up exited with {self.process.returncode}:\n{self.output()[-4000:]}")
        found = re.search(r"Tunery is running at (http://\S+)", self.output())
        return found.group(1) if found else None

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def children(self) -> dict[str, psutil.Process]:
        """The supervised children by command (server, worker, scheduler)."""
        found = {}
        for child in psutil.Process(self.process.pid).children():
            with_args = child.cmdline()
            if "tunery.server.cli_processes" in with_args:
                found[with_args[with_args.index("tunery.server.cli_processes") + 1]] = child
        return found

    def stop(self, signum: int = signal.SIGINT, while_stopping: Callable[[], None] | None = None) -> int:
        """Signal `up`; it must exit and leave none of its processes (engines included) behind."""
        tree = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        self.process.send_signal(signum)
        if while_stopping is not None:
            while_stopping()
        code = self.process.wait(300)
        _gone, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive, f"left behind: {alive}"
        return code


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path, tiny_llama: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNERY_")}  # the embedded default
    env.update(
        TUNERY_HOME=str(home),
        TUNERY_MODEL_DIRS=str(tiny_llama.parent),
        TUNERY_LEASE_SECONDS="6",
        TUNERY_WORKER_POLL_SECONDS="0.2",
        TUNERY_REAPER_INTERVAL_SECONDS="2",
        TUNERY_DEMO="0",  # no demo data or model conversion (test_up_first_start covers them)
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def up(env: dict[str, str], tmp_path: Path) -> Iterator[Up]:
    started = Up(env, free_port(), tmp_path / "up.log")
    yield started
    if started.process.poll() is None:
        started.stop()
    sys.stdout.write(f"\n----- tunery up -----\n{started.output()[-10000:]}\n")


class Api:
    def __init__(self, url: str, env: dict[str, str]) -> None:
        settings = Settings.from_env(env)
        database = Database.from_settings(settings)
        with database.session() as session:
            user = create_user(session, f"up-{os.urandom(3).hex()}@example.com", "a long enough password")
            session.commit()
            user_id = user.id
        database.dispose()
        token, _ = issue_token(user_id, settings.secret_key.get_secret_value(), datetime.now(UTC), 3600)
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def moved_to(self, url: str) -> None:
        """The same user, talking to another server (a restarted `tunery up`)."""
        self.client = httpx.Client(base_url=url, headers=self.client.headers, timeout=60)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def submit(self, model_dir: Path, **keys: Any) -> str:
        """A project, the tiny model, the demo `identity` dataset, then the job; returns the job id."""
        project = self.call("POST", "/api/projects", json={"name": "Up test"})["id"]
        self.call("POST", f"/api/projects/{project}/models", json={"name": "tiny", "path_or_hub_id": str(model_dir)})
        dataset = self.call("POST", f"/api/projects/{project}/datasets", json={"name": "identity"})["id"]
        data = (SHARED_DATA / "identity.json").read_bytes()
        self.call("POST", f"/api/datasets/{dataset}/versions", files={"files": ("identity.json", data)})
        spec = {
            "model_name_or_path": "tiny", "dataset": "identity", "template": "llama3", "stage": "sft",
            "finetuning_type": "lora", "per_device_train_batch_size": 2, "logging_steps": 1, "cutoff_len": 64,
            "max_samples": 32, "disable_gradient_checkpointing": True, "use_cpu": True, **keys,
        }  # fmt: skip
        return str(self.call("POST", "/api/jobs", json={"spec": spec, "project_id": project, "gpus": 0})["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/jobs/{job_id}"))

    def finished(self, job_id: str) -> dict[str, Any] | None:
        job = self.job(job_id)
        return job if job["status"] in TERMINAL else None


def test_up_runs_a_job_end_to_end_and_supervises_its_children(
    up: Up, env: dict[str, str], home: Path, tiny_llama: Path
) -> None:
    assert "database: sqlite, broker: sqla+sqlite" in up.output()
    api = Api(up.url, env)
    job_id = api.submit(tiny_llama, max_steps=4, save_steps=2)
    job = wait_for(lambda: api.finished(job_id), TRAINING_TIMEOUT, "the job to finish")
    assert job["status"] == "succeeded", job
    assert (home / "tunery.db").exists() and (home / "broker.db").exists()
    assert (home / "storage" / "jobs" / job_id / "output" / "adapter_model.safetensors").exists()

    children = up.children()
    assert set(children) == {"server", "worker", "scheduler"}
    children["worker"].kill()  # the supervisor starts a new one
    wait_for(lambda: "restarting worker" in up.output(), 60, "the worker to be restarted")
    restarted = wait_for(lambda: up.children().get("worker"), 60, "a new worker process")
    assert restarted.pid != children["worker"].pid

    assert up.stop(signal.SIGINT) == 0
    assert "stopped" in up.output()


def process_states(up: Up) -> str:
    """Every process of ``up`` with its state, wait channel and pending signals (for a failure message)."""
    lines = []
    for process in [psutil.Process(up.process.pid), *psutil.Process(up.process.pid).children(recursive=True)]:
        with contextlib.suppress(psutil.Error, OSError):
            status = Path(f"/proc/{process.pid}/status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            wchan = Path(f"/proc/{process.pid}/wchan").read_text()
            masks = " ".join(f"{k}={fields[k].strip()}" for k in ("State", "SigPnd", "ShdPnd", "SigBlk", "SigCgt"))
            command = " ".join(process.cmdline())[:160]
            lines.append(f"{process.pid} ppid={process.ppid()} {masks} wchan={wchan} {command}")
    return "\n".join(lines)


def sigterm_pending(pid: int) -> bool:
    """SIGTERM is waiting for the (stopped) process: the SigPnd/ShdPnd masks of /proc/PID/status."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = re.findall(r"^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$", status, re.MULTILINE)
    return any(int(mask, 16) & (1 << (signal.SIGTERM - 1)) for mask in masks)


def test_stopping_up_mid_training_resumes_the_job_on_the_next_start(
    up: Up, env: dict[str, str], home: Path, tmp_path: Path, tiny_llama: Path
) -> None:
    steps = 30
    api = Api(up.url, env)
    job_id = api.submit(tiny_llama, max_steps=steps, save_steps=2)

    def checkpointed() -> bool:
        job = api.job(job_id)
        return job["status"] == "running" and int((job.get("progress") or {}).get("step", 0)) >= 3

    wait_for(checkpointed, TRAINING_TIMEOUT, "the job to pass its first checkpoint")
    engines = engine_processes(home / "storage")
    assert len(engines) == 1
    engine = engines[0].pid
    os.killpg(engine, signal.SIGSTOP)  # frozen, so that the stop lands mid-training

    def thaw_once_signalled() -> None:
        try:
            wait_for(lambda: sigterm_pending(engine), 120, "the stopping worker to SIGTERM its engine")
        except BaseException:
            sys.stdout.write("\n----- processes when the SIGTERM did not come -----\n" + process_states(up) + "\n")
            raise
        finally:
            os.killpg(engine, signal.SIGCONT)  # it checkpoints and exits; the job goes back to the queue

    assert up.stop(signal.SIGTERM, while_stopping=thaw_once_signalled) == 0
    job = api_for_db(env, job_id)
    assert (job["status"], job["attempt"]) == ("queued", 1)
    assert job["max_attempts"] == 3 + 1  # a clean stop gives the attempt back
    assert job["resume_from"] and "checkpoint-" in job["resume_from"]

    again = Up(env, free_port(), tmp_path / "up-again.log")
    try:
        api.moved_to(again.url)
        finished = wait_for(lambda: api.finished(job_id), TRAINING_TIMEOUT, "the resumed job to finish")
        assert (finished["status"], finished["attempt"]) == ("succeeded", 2), finished
        metrics = api.call("GET", f"/api/jobs/{job_id}/metrics")
        steps_seen = sorted(item["step"] for item in (metrics["items"] if isinstance(metrics, dict) else metrics))
        assert steps_seen == list(range(1, steps + 1))
    finally:
        again.stop()
        sys.stdout.write(f"\n----- tunery up (again) -----\n{again.output()[-10000:]}\n")


def api_for_db(env: dict[str, str], job_id: str) -> dict[str, Any]:
    """The job row read straight from the SQLite file (no server is running)."""
    from tunery.server.db.models import Job

    database = Database.from_settings(Settings.from_env(env))
    with database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        row = {"status": job.status.value, "attempt": job.attempt, "resume_from": job.resume_from}
        row["max_attempts"] = job.max_attempts
    database.dispose()
    return row


def test_up_refuses_a_busy_port(env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [sys.executable, "-m", "tunery.server.cli_processes", "up", "--port", str(port)]
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "already in use" in done.stdout


def test_killed_up_takes_its_children_with_it(up: Up) -> None:
    """Even a `kill -9` of `tunery up` leaves nothing running: each child gets SIGTERM when it dies."""
    assert len(up.children()) == 3
    children = psutil.Process(up.process.pid).children(recursive=True)  # with the worker's pool processes
    up.process.kill()
    up.process.wait(30)
    _gone, alive = psutil.wait_procs(children, timeout=120)
    assert not alive, f"left behind: {alive}"


def test_up_on_postgresql_and_redis_needs_only_two_variables(
    env: dict[str, str], tmp_path: Path, tiny_llama: Path
) -> None:
    from tests.server.conftest import new_pg_database
    from tests.server.worker_support import RedisServer

    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    try:
        with new_pg_database() as database_url:
            env = {**env, "TUNERY_DATABASE_URL": database_url, "TUNERY_BROKER_URL": redis_server.url}
            up = Up(env, free_port(), tmp_path / "up.log")
            try:
                assert "database: postgresql+psycopg, broker: redis" in up.output()
                ready = httpx.get(f"{up.url}/api/ready", timeout=30).json()
                assert ready["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}
                api = Api(up.url, env)
                job_id = api.submit(tiny_llama, max_steps=2, save_steps=100)
                job = wait_for(lambda: api.finished(job_id), TRAINING_TIMEOUT, "the job to finish")
                assert job["status"] == "succeeded", job
                assert not (env_home(env) / "tunery.db").exists() and not (env_home(env) / "broker.db").exists()
            finally:
                up.stop()
                sys.stdout.write(f"\n----- tunery up (postgresql) -----\n{up.output()[-10000:]}\n")
    finally:
        redis_server.stop()


def env_home(env: dict[str, str]) -> Path:
    return Path(env["TUNERY_HOME"])
