"""Job submit -> first training step, decomposed with real timestamps.

Clocks are all this machine's wall clock: the client (POST sent / answered), the job row (queued_at, started_at:
written by the API and the worker's claim), the engine process (its start time from /proc), the moment the
model's weights file shows up in the engine's memory maps (polled every 10 ms: the model load starts), the
engine's own event times (first log line after the model is loaded, ``started``, first ``progress``) and
the time the worker's relay stored the progress event.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import select

from tunery.server.db.models import Job, JobEvent
from tunery.server.db.session import Database

ENGINE_MARK = "tunery.cli.main"
POLL = 0.01
#: What an import-only probe loads: what ``tunery train`` imports before it starts (later lazy imports excluded).
IMPORT_PROBE = (
    "import tunery.cli.main, tunery.engine.events; tunery.cli.main.build_parser()\n"
    "from tunery.engine.train.runner import run_training\n"
)

PHASES = (
    ("api", "POST /api/jobs answered (validate, copy data, commit, enqueue)", "post_start", "post_end"),
    ("queue_claim", "broker delivery + worker claim (job.started_at)", "post_end", "claimed"),
    ("spawn", "job file written, engine process started (/proc start time)", "claimed", "process"),
    ("import_data", "python + engine imports + tokenizer + dataset tokenization", "process", "weights"),
    ("model_load", "model weights load + LoRA (until the engine's first log event)", "weights", "first_log"),
    ("trainer", "trainer built (engine `started` event)", "first_log", "started_event"),
    ("first_step", "first optimizer step (engine `progress` event)", "started_event", "progress_event"),
    ("relay", "relay stored the progress event (worker -> DB)", "progress_event", "progress_stored"),
)
#: phases the platform adds on top of a standalone `tunery train`
PLATFORM = ("api", "queue_claim", "spawn", "relay")


@dataclass
class Timeline:
    job_id: str = ""
    status: str = ""
    post_start: float = 0.0
    post_end: float = 0.0
    claimed: float | None = None
    process: float | None = None
    weights: float | None = None
    first_log: float | None = None
    started_event: float | None = None
    progress_event: float | None = None
    progress_stored: float | None = None

    def phases(self) -> dict[str, float | None]:
        found: dict[str, float | None] = {}
        for name, _what, start, end in PHASES:
            a, b = getattr(self, start), getattr(self, end)
            found[name] = round(b - a, 3) if a is not None and b is not None else None
        return found

    def record(self) -> dict[str, Any]:
        phases = self.phases()
        platform = [phases[name] for name in PLATFORM]
        total = self.progress_stored - self.post_start if self.progress_stored else None
        model = phases["model_load"]
        return {
            **asdict(self),
            "phases": phases,
            "total_s": round(total, 3) if total is not None else None,
            "platform_s": round(sum(p for p in platform if p is not None), 3) if None not in platform else None,
            "total_minus_model_load_s": round(total - model, 3) if total is not None and model is not None else None,
        }


def _stamp(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _event_stamp(payload: dict[str, Any]) -> float | None:
    raw = payload.get("time")
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp() if raw else None


def _engine(worker: psutil.Process, job_id: str) -> psutil.Process | None:
    for child in worker.children(recursive=True):
        try:
            line = child.cmdline()
        except psutil.Error:
            continue
        if any(ENGINE_MARK in part for part in line) and any(job_id in part for part in line):
            return child
    return None


def _started_at(pid: int) -> float | None:
    """Wall-clock start of ``pid`` to a clock tick (psutil's create_time rounds boot time to whole seconds)."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def _mapped(pid: int, path: str) -> bool:
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
            return any(path in line for line in maps)
    except OSError:
        return False


def _progress_stored(database: Database, job_id: str) -> bool:
    with database.session() as session:
        query = select(JobEvent.id).where(JobEvent.job_id == job_id, JobEvent.type == "progress").limit(1)
        return session.scalar(query) is not None


def _fill_from_rows(database: Database, timeline: Timeline) -> None:
    with database.session() as session:
        job = session.get(Job, timeline.job_id)
        assert job is not None
        timeline.status, timeline.claimed = job.status.value, _stamp(job.started_at)
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == timeline.job_id).order_by(JobEvent.seq))
        for event in events:
            if event.type == "log" and timeline.first_log is None:
                timeline.first_log = _event_stamp(event.payload)
            elif event.type == "started" and timeline.started_event is None:
                timeline.started_event = _event_stamp(event.payload)
            elif event.type == "progress" and timeline.progress_event is None:
                timeline.progress_event = _event_stamp(event.payload)
                timeline.progress_stored = _stamp(event.created_at)


def run_job(
    api: httpx.Client, database: Database, body: dict[str, Any], worker_pid: int, weights: Path, timeout: float
) -> Timeline:
    """Submit ``body`` to POST /api/jobs and follow it to its first progress event (then to its end)."""
    worker = psutil.Process(worker_pid)
    timeline = Timeline(post_start=time.time())
    response = api.post("/api/jobs", json=body)
    timeline.post_end = time.time()
    response.raise_for_status()
    timeline.job_id = response.json()["id"]
    engine: psutil.Process | None = None
    deadline, tick = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        tick += 1
        if engine is None:
            engine = _engine(worker, timeline.job_id)
            if engine is not None:
                timeline.process = _started_at(engine.pid)
        if engine is not None and timeline.weights is None and _mapped(engine.pid, str(weights)):
            timeline.weights = time.time()
        if tick % 10 == 0 and _progress_stored(database, timeline.job_id):
            break
        time.sleep(POLL)
    _wait_finished(api, timeline.job_id, deadline)
    _fill_from_rows(database, timeline)
    return timeline


def _wait_finished(api: httpx.Client, job_id: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if api.get(f"/api/jobs/{job_id}").json()["status"] in ("succeeded", "failed", "cancelled"):
            return
        time.sleep(0.2)


def import_seconds(python: str, env: dict[str, str]) -> float | None:
    """Seconds a fresh process spends importing what the engine imports (an estimate, same machine load)."""
    started = time.time()
    done = subprocess.run([python, "-c", IMPORT_PROBE], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
        return None
    return round(time.time() - started, 3)
