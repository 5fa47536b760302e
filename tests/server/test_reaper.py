"""The reaper on PostgreSQL: expired leases, attempts, freed GPUs, lost messages, silent workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.server.worker_support import Stack, events, job_row, new_job, new_project
from tunery.server.db.base import utcnow
from tunery.server.db.models import Gpu, JobStatus, Metric, Worker
from tunery.server.worker.context import WorkerContext, WorkerOptions
from tunery.server.worker.gpus import GpuInfo
from tunery.server.worker.reaper import reap
from tunery.server.worker.registry import WorkerIdentity, announce

SPEC = {"model": {"model_name_or_path": "tiny"}, "training": {"logging_steps": 1}}
OPTIONS = WorkerOptions(
    lease_seconds=60, heartbeat_seconds=20, poll_seconds=1, cancel_grace_seconds=60,
    reaper_interval_seconds=30, dispatch_grace_seconds=60, claim_wait_seconds=30,
)  # fmt: skip


@pytest.fixture
def stack(pg_url: str, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, pg_url, "redis://127.0.0.1:1/0")
    yield stack
    stack.close()


@pytest.fixture
def context(stack: Stack) -> WorkerContext:
    return WorkerContext(stack.settings, stack.database, OPTIONS)


class Sent(list[tuple[str, str]]):
    """Records what the reaper sends to the queue (the broker is not what these tests are about)."""

    def __call__(self, job_id: str, queue: str) -> None:
        self.append((job_id, queue))


def checkpoint(folder: Path, step: int, complete: bool = True) -> None:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    if not complete:
        (path / "checkpoint-is-incomplete.txt").write_text("")


def dead_gpu_job(stack: Stack, expired: datetime, **values: object) -> str:
    """A job running on GPU 0 of worker `dead`, whose lease expires at ``expired``."""
    announce(stack.database.sessions, WorkerIdentity("dead", ("gpu",), (GpuInfo(0, "NVIDIA Test", 1024),)))
    job_id = new_job(
        stack.database, new_project(stack.database), SPEC, status=JobStatus.RUNNING, attempt=1, gpu_count=1,
        lease_owner="dead/abc", lease_expires_at=expired, worker_id="dead", gpus=[0], last_seq=5, **values,
    )  # fmt: skip
    with stack.database.sessions.begin() as session:
        session.execute(update(Gpu).where(Gpu.worker_id == "dead").values(job_id=job_id))
    return job_id


def gpu_holder(stack: Stack) -> str | None:
    with stack.database.session() as session:
        return session.scalar(select(Gpu.job_id).where(Gpu.worker_id == "dead"))


def test_expired_lease_is_requeued_from_the_newest_complete_checkpoint(stack: Stack, context: WorkerContext) -> None:
    job_id = dead_gpu_job(stack, utcnow() - timedelta(seconds=1))
    with stack.database.sessions.begin() as session:  # steps 1-6 logged (logging_steps 1) and relayed
        session.add_all(Metric(job_id=job_id, step=step, attempt=1, values={"loss": 1.0}) for step in range(1, 7))
    output = stack.storage_root / "jobs" / job_id / "output"
    checkpoint(output, 2)
    checkpoint(output, 4)
    checkpoint(output, 6, complete=False)  # the worker died while saving it
    # saved by the engine after its worker died: step 8's metrics never reached the database, and a run
    # resumed there would never log them again
    checkpoint(output, 8)
    sent = Sent()
    report = reap(context, enqueue=sent)

    assert report.requeued == [job_id] and report.failed == []
    assert sent == [(job_id, "gpu")]
    job = job_row(stack.database, job_id)
    assert job.status == JobStatus.QUEUED and job.attempt == 1  # the next claim makes it attempt 2
    assert job.resume_from == f"jobs/{job_id}/output/checkpoint-4"
    assert (job.lease_owner, job.lease_expires_at, job.worker_id, job.gpus) == (None, None, None, [])
    assert gpu_holder(stack) is None
    event = events(stack.database, job_id)[-1]
    assert (event.seq, event.type, event.attempt) == (6, "status", 1)
    assert event.payload["status"] == "queued" and event.payload["reason"] == "lease_expired"
    assert event.payload["resume_from"] == job.resume_from
    assert reap(context, enqueue=sent).requeued == []  # done once


def test_last_attempt_fails_with_too_many_attempts(stack: Stack, context: WorkerContext) -> None:
    job_id = dead_gpu_job(stack, utcnow() - timedelta(seconds=1), max_attempts=1)
    sent = Sent()
    report = reap(context, enqueue=sent)
    assert report.failed == [job_id] and report.requeued == [] and sent == []
    job = job_row(stack.database, job_id)
    assert job.status == JobStatus.FAILED and job.error_code == "too_many_attempts"
    assert job.finished_at is not None and gpu_holder(stack) is None
    event = events(stack.database, job_id)[-1]
    assert event.payload["status"] == "failed" and event.payload["error_code"] == "too_many_attempts"


def test_a_live_lease_is_left_alone(stack: Stack, context: WorkerContext) -> None:
    job_id = dead_gpu_job(stack, utcnow() + timedelta(seconds=30))
    report = reap(context, enqueue=Sent())
    assert report.requeued == report.failed == []
    assert job_row(stack.database, job_id).status == JobStatus.RUNNING and gpu_holder(stack) == job_id


def test_lost_message_is_sent_again_once_per_grace_when_a_worker_has_room(stack: Stack, context: WorkerContext) -> None:
    announce(stack.database.sessions, WorkerIdentity("cpu", ("gpu", "default"), (), 1))
    job_id = new_job(stack.database, new_project(stack.database), SPEC, queued_at=utcnow() - timedelta(minutes=5))
    fresh = new_job(stack.database, new_project(stack.database), SPEC, queued_at=utcnow())  # may still be in flight
    ago = utcnow() - timedelta(minutes=10)
    new_job(stack.database, new_project(stack.database), SPEC, queued_at=ago, queue="eval")  # no worker reads it
    sent = Sent()
    assert reap(context, enqueue=sent).redispatched == [job_id]
    assert reap(context, enqueue=sent).redispatched == []  # within the grace period
    later = utcnow() + timedelta(seconds=OPTIONS.dispatch_grace_seconds + 1)
    announce(stack.database.sessions, WorkerIdentity("cpu", ("gpu", "default"), (), 1), now=later)
    assert reap(context, now=later, enqueue=sent).redispatched == [job_id]  # one slot: only the oldest
    assert sent == [(job_id, "gpu"), (job_id, "gpu")]
    assert job_row(stack.database, fresh).status == JobStatus.QUEUED


def test_no_room_no_resend(stack: Stack, context: WorkerContext) -> None:
    announce(stack.database.sessions, WorkerIdentity("cpu", ("gpu",), (), 1))
    project = new_project(stack.database)
    new_job(
        stack.database, project, SPEC, status=JobStatus.RUNNING, worker_id="cpu",
        lease_owner="cpu/x", lease_expires_at=utcnow() + timedelta(seconds=30),
    )  # fmt: skip
    new_job(stack.database, project, SPEC, queued_at=utcnow() - timedelta(minutes=5))
    assert reap(context, enqueue=Sent()).redispatched == []


def test_silent_workers_go_offline(stack: Stack, context: WorkerContext) -> None:
    announce(stack.database.sessions, WorkerIdentity("old", ("gpu",), (), 1), now=utcnow() - timedelta(hours=1))
    announce(stack.database.sessions, WorkerIdentity("alive", ("gpu",), (), 1))
    assert reap(context, enqueue=Sent()).offline == ["old"]
    with stack.database.session() as session:
        assert dict(session.execute(select(Worker.id, Worker.status)).all()) == {"old": "offline", "alive": "online"}
