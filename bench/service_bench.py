"""Platform service benchmark, loopback only, on PostgreSQL + Redis (`make services`):

1. API latency: GET /api/jobs, GET /api/jobs/{id}, GET /api/projects, each at a fixed open-loop rate
   (default 200 requests/s for 10 s) against `tunery server` (target p99 < 50 ms).
2. Live events: 200 websocket clients on one job stream; progress events relayed the way the worker relays
   them (DB transaction + Redis publish); latency = event time -> client receipt (target p99 < 250 ms).
3. Submit -> first training step: real tiny LoRA jobs through POST /api/jobs with a running `tunery worker`,
   decomposed with job-row, process and engine-event timestamps (target: platform overhead <= 2 s).

A fresh database is created and dropped; the section "Platform service" of bench/RESULTS.md is replaced
(other sections are left alone); raw numbers go to bench/out/service.json.

  .venv/bin/python bench/service_bench.py [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH, OUT, ROOT, ensure_model, machine_info
from service_job import PHASES, PLATFORM, import_seconds, run_job
from service_load import KeepAliveClient, fan_out, open_loop, percentile
from service_report import render, write_section

PYTHON = str(ROOT / ".venv" / "bin" / "python")
ADMIN_URL = os.environ.get("TUNERY_BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TUNERY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SEEDED_JOBS = 200


@contextmanager
def pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"tunery_bench_{secrets.token_hex(4)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Processes:
    """`tunery server` / `tunery worker` children, logs under bench/out, stopped on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[subprocess.Popen[bytes]] = []
        self.named: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (OUT / f"service-{name}.log").open("wb")
        argv = [PYTHON, "-m", "tunery.server.cli_processes", *args]
        child = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.children.append(child)
        self.named[name] = child
        return child

    def stop_one(self, name: str) -> None:
        child = self.named.pop(name)
        child.terminate()
        child.wait(60)

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def seed(settings: Any, database: Any) -> dict[str, Any]:
    """A user with 5 projects, the demo SFT dataset, 200 finished jobs reading it; a running job to stream."""
    from tunery.demo import DEMO_DATA_DIR
    from tunery.server.auth.tokens import issue_token
    from tunery.server.db.models import Job, JobDatasetVersion, JobStatus
    from tunery.server.services.dataset_local import add_local_version
    from tunery.server.services.datasets import create_dataset
    from tunery.server.services.projects import create_project
    from tunery.server.services.users import create_user
    from tunery.server.storage import Storage
    from tunery.spec import JobSpec

    spec = JobSpec.from_mapping({
        "model_name_or_path": "/models/tiny", "stage": "sft", "finetuning_type": "lora", "dataset": "tunery_identity",
        "template": "llama3", "cutoff_len": 256, "max_steps": 20, "output_dir": "out",
    }).model_dump(mode="json")  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    info = json.loads((DEMO_DATA_DIR / "dataset_info.json").read_text())
    with database.session() as session:
        user = create_user(session, "bench@example.com", "bench password 123")
        projects = [create_project(session, user, f"Bench {i}") for i in range(5)]
        session.commit()
        dataset = create_dataset(session, projects[0].id, "tunery_identity", None)
        version = add_local_version(
            session, Storage(settings.storage_root), dataset, DEMO_DATA_DIR, info["tunery_identity"], "sft"
        )
        ids = []
        for number in range(SEEDED_JOBS):
            at = now - dt.timedelta(minutes=SEEDED_JOBS - number)
            job = Job(
                project_id=projects[0].id, created_by=user.id, name=f"bench-{number}", spec=spec, attempt=1,
                status=JobStatus.SUCCEEDED, queued_at=at, started_at=at, finished_at=at, last_seq=25,
                progress={"step": 20, "total_steps": 20, "loss": 1.23, "epoch": 1.0, "elapsed_seconds": 12.5},
            )  # fmt: skip
            job.dataset_versions.append(JobDatasetVersion(dataset_version_id=version.id, name="tunery_identity"))
            session.add(job)
            session.flush()
            ids.append(job.id)
        live = Job(
            project_id=projects[0].id, created_by=user.id, name="streamed", spec=spec, attempt=1,
            status=JobStatus.RUNNING, lease_owner="bench-publisher", started_at=now, queued_at=now,
        )  # fmt: skip
        session.add(live)
        session.commit()
        token, _ = issue_token(user.id, settings.secret_key.get_secret_value(), now, 6 * 3600)
        return {"token": token, "project": projects[0].id, "jobs": ids, "live_job": live.id}


async def drain(client: httpx.AsyncClient, limit_ms: float = 20.0, cap: float = 180.0) -> float:
    """Wait until the server answers /api/health within ``limit_ms`` three times in a row (a backlog left by
    an overloaded run is worked off); returns the seconds waited."""
    clock = time.perf_counter
    started, quick = clock(), 0
    while quick < 3 and clock() - started < cap:
        sent = clock()
        try:
            ok = (await client.get("/api/health", timeout=30)).status_code == 200
        except httpx.HTTPError:
            ok = False
        quick = quick + 1 if ok and (clock() - sent) * 1000 < limit_ms else 0
        await asyncio.sleep(0.2)
    return round(clock() - started, 1)


def part_api(url: str, seeded: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = seeded["jobs"]
    endpoints = {
        "GET /api/jobs": lambda i: "/api/jobs",
        "GET /api/jobs/{id}": lambda i: f"/api/jobs/{jobs[(i * 7919) % len(jobs)]}",
        "GET /api/projects": lambda i: "/api/projects",
    }
    rates = [float(r) for r in args.rates.split(",")]

    async def run() -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {seeded['token']}"}

        @contextlib.asynccontextmanager
        async def client() -> AsyncIterator[KeepAliveClient]:  # fresh per run: none of a run's connections linger
            http = KeepAliveClient(url, headers, timeout=10)
            try:
                yield http
            finally:
                await http.aclose()

        found = []
        async with client() as warm:
            for paths in endpoints.values():  # warm-up: connections, caches (not counted)
                await open_loop(warm, "warm-up", paths, min(rates), int(min(rates)), 10)
        for rate in rates:
            repeats = args.repeats if rate == rates[-1] else 1  # the target rate: several runs, the median counts
            for run_number in range(1, repeats + 1):
                for name, paths in endpoints.items():
                    async with client() as http, httpx.AsyncClient(base_url=url) as probe:
                        waited = await drain(probe)
                        stats = await open_loop(http, name, paths, rate, int(rate * args.seconds), args.seconds + 5)
                    summary = stats.summary() | {"rate": rate, "run": run_number, "drained_s": waited}
                    summary["load_after"] = [round(x, 2) for x in os.getloadavg()]
                    print(f"  {rate:.0f}/s {name} run {run_number}: {summary}", flush=True)
                    found.append(summary)
        return found

    return uvloop.run(run())  # the generator's own loop costs less CPU on uvloop (the server runs on it too)


def part_stream(url: str, seeded: dict[str, Any], env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    job = seeded["live_job"]
    ws_url = url.replace("http://", "ws://") + f"/api/jobs/{job}/stream?token={seeded['token']}"
    argv = [PYTHON, str(BENCH / "service_publish.py"), job, "bench-publisher", str(args.events), str(args.event_rate)]
    load_before = [round(x, 2) for x in os.getloadavg()]
    result = asyncio.run(fan_out(ws_url, args.clients, argv, env, args.events / args.event_rate))
    samples = result.samples
    expected = args.events * len(result.received)
    summary = {
        "clients": args.clients, "connected": len(result.received), "connect_errors": result.connect_errors,
        "events": args.events, "event_rate": args.event_rate, "deliveries": len(samples), "expected": expected,
        "p50_ms": round(statistics.median(samples), 2) if samples else None,
        "p90_ms": round(percentile(samples, 90), 2) if samples else None,
        "p99_ms": round(percentile(samples, 99), 2) if samples else None,
        "max_ms": round(max(samples), 2) if samples else None,
        "publisher_exit": result.publisher_code, "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    print(f"  stream: {summary}", flush=True)
    return summary


def part_job(url: str, seeded: dict[str, Any], database: Any, worker: int, args: argparse.Namespace) -> dict[str, Any]:
    model = ensure_model(OUT / "tiny-llama")
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    project = seeded["project"]
    with httpx.Client(base_url=url, headers=headers, timeout=120) as api:
        api.post(
            f"/api/projects/{project}/models", json={"name": "tiny", "path_or_hub_id": str(model)}
        ).raise_for_status()
        spec = {
            "model_name_or_path": "tiny", "dataset": "tunery_identity", "template": "llama3", "stage": "sft",
            "finetuning_type": "lora", "per_device_train_batch_size": 2, "logging_steps": 1, "cutoff_len": 64,
            "max_steps": 2, "save_steps": 100, "disable_gradient_checkpointing": True, "use_cpu": True,
        }  # fmt: skip
        runs = []
        for number in range(args.jobs):
            body = {"spec": spec, "project_id": project, "gpus": 0, "name": f"first-step-{number}"}
            timeline = run_job(api, database, body, worker, model / "model.safetensors", timeout=600)
            record = timeline.record() | {"load_after": [round(x, 2) for x in os.getloadavg()]}
            runs.append(record)
            print(
                f"  job {number}: {record['status']} total {record['total_s']} s, phases {record['phases']}", flush=True
            )
    probe_env = {k: v for k, v in os.environ.items() if not k.startswith("TUNERY_")}
    probes = [import_seconds(PYTHON, probe_env) for _ in range(args.jobs)]
    return {"runs": runs, "import_probe_s": probes, "phases": [list(p) for p in PHASES], "platform": list(PLATFORM)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of the benchmark itself)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write RESULTS.md")
    parser.add_argument("--rates", default="50,200", help="request rates (per second) to run, the target last")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--repeats", type=int, default=3, help="runs at the target rate (the median run counts)")
    parser.add_argument("--workers", default="1,2", help="`tunery server --workers` values for the API part")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--event-rate", type=float, default=4.0, help="events per second on the stream")
    parser.add_argument("--jobs", type=int, default=3, help="jobs submitted one after the other")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: api,stream,job")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still stops its processes, drops its DB
    if args.quick:
        args.seconds, args.clients, args.events, args.jobs, args.rates, args.repeats = 2.0, 20, 10, 1, "50", 1
    skip = set(filter(None, args.skip.split(",")))
    OUT.mkdir(parents=True, exist_ok=True)
    info = machine_info() | {"started": dt.datetime.now().isoformat(timespec="seconds"), "args": vars(args)}
    from tunery.server.config import Settings
    from tunery.server.db.session import Database
    from tunery.server.migrations import upgrade_head

    results: dict[str, Any] = {"info": info}
    scratch = OUT / "service-scratch"
    with pg_database() as database_url:
        home = scratch / f"home-{secrets.token_hex(3)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUNERY_")}
        env |= {
            "TUNERY_HOME": str(home), "TUNERY_DATABASE_URL": database_url, "TUNERY_BROKER_URL": REDIS_URL,
            "TUNERY_REDIS_URL": REDIS_URL, "TUNERY_SECRET_KEY": secrets.token_urlsafe(32),
            "TUNERY_MODEL_DIRS": str(OUT), "TUNERY_MIGRATE_ON_START": "0", "TUNERY_DEMO": "0",
        }  # fmt: skip
        settings = Settings.from_env(env)
        database = Database.from_settings(settings)
        upgrade_head(database.engine)
        seeded = seed(settings, database)
        processes = Processes(env)
        url = ""
        try:
            results["api"] = []
            for workers in [int(w) for w in str(args.workers).split(",")]:  # the last one stays up for the rest
                if url:
                    processes.stop_one("server")
                url = start_server(processes, workers)
                if "api" not in skip:
                    print(f"API latency at {args.rates} requests/s, {workers} server process(es) ...", flush=True)
                    results["api"] += [row | {"workers": workers} for row in part_api(url, seeded, args)]
            if "stream" not in skip:
                print(f"websocket fan-out: {args.clients} clients ...", flush=True)
                results["stream"] = part_stream(url, seeded, env, args)
            if "job" not in skip:
                print("submit -> first step ...", flush=True)
                worker = processes.start("worker", "worker", "--name", "bench-worker", "--concurrency", "1")
                wait_until(lambda: worker_online(database, "bench-worker"), 180, "tunery worker")
                time.sleep(2.0)  # its consumer is attached to the queue
                results["job"] = part_job(url, seeded, database, worker.pid, args)
        finally:
            processes.stop()
            database.dispose()
    info["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    (OUT / "service.json").write_text(json.dumps(results, indent=2, default=str))
    section = render(results)
    print(section)
    if not args.no_write:
        write_section(BENCH / "RESULTS.md", section)
    return 0


def start_server(processes: Processes, workers: int) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = ["server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    processes.start("server", *argv)
    wait_until(lambda: answers(url), 120, "tunery server")
    return url


def worker_online(database: Any, name: str) -> bool:
    from tunery.server.db.models import Worker

    with database.session() as session:
        row = session.get(Worker, name)
        return row is not None and row.status == "online"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
