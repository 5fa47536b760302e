"""Failures while a job trains: a worker killed with SIGKILL, a Redis restart. Real processes throughout."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select

from tests.server.worker_support import (
    FINISHED,
    TRAINING_TIMEOUT,
    RedisServer,
    Stack,
    engine_processes,
    events,
    is_engine,
    job_in,
    job_row,
    metric_steps,
    new_job,
    new_project,
    tiny_spec,
    wait_for,
)
from tunery.server.db.models import Checkpoint, JobStatus, Metric
from tunery.server.worker.context import WorkerContext
from tunery.server.worker.reaper import reap


def signal_groups(processes: list[psutil.Process], signum: int) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)


def newest_checkpoint_step(stack: Stack, job_id: str) -> int | None:
    with stack.database.session() as session:
        return session.scalar(
            select(Checkpoint.step).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step.desc())
        )


#: Stage keys per stage: recovery is the worker's and the engine's resume, the same for every stage.
STAGE_KEYS: dict[str, dict[str, object]] = {
    "sft": {},
    "dpo": {"stage": "dpo", "dataset": "dpo_en_demo", "cutoff_len": 96},
    "grpo": {
        "stage": "grpo",
        "dataset": "alpaca_en_demo",
        "reward_funcs": [{"name": "length", "args": {"target": 4}}],
        "num_generations": 2,
        "max_completion_length": 8,
    },
}


@pytest.mark.parametrize("stage", list(STAGE_KEYS))
def test_killed_worker_job_resumes_from_checkpoint_on_new_worker(stack: Stack, tiny_llama: Path, stage: str) -> None:
    steps = 12
    project = new_project(stack.database)
    spec = tiny_spec(tiny_llama, max_steps=steps, save_steps=3, **STAGE_KEYS[stage])
    job_id = new_job(stack.database, project, spec, max_attempts=3)
    first = stack.worker("w1")
    stack.enqueue(job_id)
    wait_for(lambda: newest_checkpoint_step(stack, job_id), TRAINING_TIMEOUT, "a first checkpoint")

    # Freeze the engine so the kill lands mid-training, then `kill -9` the worker's main process: its pool
    # processes die with it (Celery's parent-death signal), the engine gets SIGTERM (the worker's launcher).
    engines = engine_processes(stack.storage_root)
    assert len(engines) == 1
    pool = [p for p in first.tree() if p.pid != first.pid and not is_engine(p)]
    signal_groups(engines, signal.SIGSTOP)
    try:
        first.process.kill()
        assert first.process.wait(30) == -signal.SIGKILL
        psutil.wait_procs(pool, timeout=30)
    finally:
        signal_groups(engines, signal.SIGCONT)  # it handles the SIGTERM: checkpoint, exit
    wait_for(lambda: not engine_processes(stack.storage_root), 120, "the orphaned engine to exit")
    assert not any(p.is_running() for p in pool)
    assert job_row(stack.database, job_id).status == JobStatus.RUNNING  # nobody knows yet

    context = WorkerContext.from_settings(stack.settings)
    report = wait_for(lambda: reap(context).requeued, 60, "the lease to expire and the reaper to act")
    assert report == [job_id]
    job = job_row(stack.database, job_id)
    assert job.status == JobStatus.QUEUED and job.attempt == 1 and job.lease_owner is None
    resumed_step = int(str(job.resume_from).rsplit("-", 1)[1])
    assert job.resume_from == f"jobs/{job_id}/output/checkpoint-{resumed_step}"
    requeued = [e for e in events(stack.database, job_id) if e.type == "status" and e.payload["status"] == "queued"]
    assert len(requeued) == 1 and requeued[0].payload["reason"] == "lease_expired"

    stack.worker("w2")
    job = wait_for(lambda: job_in(stack.database, job_id, *FINISHED), TRAINING_TIMEOUT, "the resumed job to finish")
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert (job.attempt, job.worker_id) == (2, "w2")
    assert metric_steps(stack.database, job_id) == list(range(1, steps + 1))
    with stack.database.session() as session:
        attempts = dict(session.execute(select(Metric.step, Metric.attempt).where(Metric.job_id == job_id)).all())
    assert all(attempts[step] == 2 for step in range(resumed_step + 1, steps + 1))
    rows = events(stack.database, job_id)
    assert [row.seq for row in rows] == list(range(1, job.last_seq + 1))
    started = [row for row in rows if row.type == "started" and row.attempt == 2]
    assert len(started) == 1 and str(started[0].payload["resumed_from"]).endswith(f"checkpoint-{resumed_step}")
    assert not engine_processes(stack.storage_root)


def test_redis_restart_while_training_loses_nothing(stack: Stack, tiny_llama: Path, redis_server: RedisServer) -> None:
    project = new_project(stack.database)
    long_job = new_job(stack.database, project, tiny_spec(tiny_llama, max_steps=10, save_steps=5))
    short = tiny_spec(tiny_llama, max_steps=3, save_steps=100)
    waiting, stored = new_job(stack.database, project, short), new_job(stack.database, project, short)
    stack.worker("w1", concurrency=1)  # one slot, two Celery processes: they hold 2 messages at most
    stack.start("scheduler")
    for job_id in (long_job, waiting, stored):  # `stored` stays in Redis until a process is free
        stack.enqueue(job_id)

    def training(job_id: str) -> bool:
        job = job_row(stack.database, job_id)
        return job.status == JobStatus.RUNNING and int(job.progress.get("step", 0)) >= 2

    wait_for(lambda: training(long_job), TRAINING_TIMEOUT, "the first job to be training")
    redis_server.restart()  # no persistence: the messages in Redis are gone; the reaper sends them again

    done = [
        wait_for(lambda j=job_id: job_in(stack.database, j, *FINISHED), TRAINING_TIMEOUT, "the jobs to finish")
        for job_id in (long_job, waiting, stored)
    ]
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 3, [job.error_message for job in done]
    assert [job.attempt for job in done] == [1, 1, 1]
    assert metric_steps(stack.database, long_job) == list(range(1, 11))
    for job in done:
        assert [row.seq for row in events(stack.database, job.id)] == list(range(1, job.last_seq + 1))
    assert not engine_processes(stack.storage_root)
