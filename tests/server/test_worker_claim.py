"""Claiming jobs on PostgreSQL: GPU and CPU-slot allocation is atomic under concurrent claims."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.server.worker_support import Stack, job_row, new_job, new_project
from tunery.server.db.base import utcnow
from tunery.server.db.models import Gpu, JobEvent, JobStatus
from tunery.server.worker.claim import Claim, Refused, try_claim
from tunery.server.worker.gpus import GpuInfo
from tunery.server.worker.registry import WorkerIdentity, announce

LEASE = timedelta(seconds=30)
SPEC = {"model": {"model_name_or_path": "tiny"}}


@pytest.fixture
def stack(pg_url: str, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, pg_url, "redis://127.0.0.1:1/0")  # nothing is sent in these tests
    yield stack
    stack.close()


def gpu_worker(stack: Stack, name: str, count: int) -> str:
    gpus = tuple(GpuInfo(index, "NVIDIA Test", 81920) for index in range(count))
    announce(stack.database.sessions, WorkerIdentity(name, ("gpu",), gpus, slots=count))
    return name


def cpu_worker(stack: Stack, name: str, slots: int) -> str:
    announce(stack.database.sessions, WorkerIdentity(name, ("gpu",), (), slots))
    return name


def claim_all(stack: Stack, worker: str, job_ids: list[str]) -> list[Claim | Refused]:
    """Claim every job at once, one thread each, all released together."""
    results: list[Claim | Refused | None] = [None] * len(job_ids)
    barrier = threading.Barrier(len(job_ids))

    def claim(index: int) -> None:
        barrier.wait()
        results[index] = try_claim(stack.database.sessions, job_ids[index], worker, LEASE, utcnow())

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(len(job_ids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def test_concurrent_claims_never_share_a_gpu(stack: Stack) -> None:
    worker = gpu_worker(stack, "gpu-box", 3)
    project = new_project(stack.database)
    jobs = [new_job(stack.database, project, SPEC, gpu_count=1) for _ in range(6)]
    results = claim_all(stack, worker, jobs)
    claims = [result for result in results if isinstance(result, Claim)]
    assert len(claims) == 3 and results.count(Refused.BUSY) == 3
    assert sorted(gpu for claim in claims for gpu in claim.gpus) == [0, 1, 2]
    with stack.database.session() as session:
        held = dict(session.execute(select(Gpu.index, Gpu.job_id)).all())
    assert held == {claim.gpus[0]: claim.job_id for claim in claims}
    for claim in claims:
        job = job_row(stack.database, claim.job_id)
        assert (job.status, job.attempt, job.worker_id, job.gpus) == (JobStatus.RUNNING, 1, worker, list(claim.gpus))
        assert job.lease_owner == claim.lease_owner and job.lease_expires_at is not None


def test_concurrency_caps_the_jobs_of_a_gpu_worker(stack: Stack) -> None:
    gpus = tuple(GpuInfo(index, "NVIDIA Test", 81920) for index in range(4))
    announce(stack.database.sessions, WorkerIdentity("gpu-box", ("gpu",), gpus, slots=2))
    project = new_project(stack.database)
    results = claim_all(stack, "gpu-box", [new_job(stack.database, project, SPEC, gpu_count=1) for _ in range(4)])
    assert sum(isinstance(result, Claim) for result in results) == 2


def test_multi_gpu_job_needs_all_its_gpus_free(stack: Stack) -> None:
    worker = gpu_worker(stack, "gpu-box", 2)
    project = new_project(stack.database)
    single = new_job(stack.database, project, SPEC, gpu_count=1)
    double = new_job(stack.database, project, SPEC, gpu_count=2)
    first = try_claim(stack.database.sessions, single, worker, LEASE, utcnow())
    assert isinstance(first, Claim)
    assert try_claim(stack.database.sessions, double, worker, LEASE, utcnow()) is Refused.BUSY
    assert job_row(stack.database, double).status == JobStatus.QUEUED
    with stack.database.session() as session:  # the refused claim took nothing
        assert session.scalars(select(Gpu.job_id).where(Gpu.job_id.is_not(None))).all() == [single]


def test_cpu_slots_are_atomic_too(stack: Stack) -> None:
    worker = cpu_worker(stack, "cpu-box", 2)
    project = new_project(stack.database)
    jobs = [new_job(stack.database, project, SPEC) for _ in range(5)]
    results = claim_all(stack, worker, jobs)
    assert sum(isinstance(result, Claim) for result in results) == 2
    assert all(result.gpus == () for result in results if isinstance(result, Claim))


def test_a_job_is_claimed_once_and_numbers_its_events_after_the_last(stack: Stack) -> None:
    worker = cpu_worker(stack, "cpu-box", 4)
    project = new_project(stack.database)
    job_id = new_job(stack.database, project, SPEC, last_seq=7, attempt=1)
    results = claim_all(stack, worker, [job_id] * 4)
    claims = [result for result in results if isinstance(result, Claim)]
    assert len(claims) == 1 and results.count(Refused.GONE) == 3
    claim = claims[0]
    assert (claim.attempt, claim.seq_offset) == (2, 8)  # event 8: "running"; engine event N -> job seq 8 + N
    with stack.database.session() as session:
        event = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).one()
    assert (event.seq, event.type, event.attempt, event.payload["status"]) == (8, "status", 2, "running")


def test_gpu_job_waits_for_a_gpu_worker_while_one_is_alive(stack: Stack) -> None:
    cpu = cpu_worker(stack, "cpu-box", 2)
    project = new_project(stack.database)
    wants_gpu = new_job(stack.database, project, SPEC, gpu_count=1)
    gpu_worker(stack, "gpu-box", 1)
    assert try_claim(stack.database.sessions, wants_gpu, cpu, LEASE, utcnow() - timedelta(minutes=1)) is Refused.BUSY
    # no GPU worker seen since "now + 1 min": the CPU worker takes it (a CPU-only installation)
    later = utcnow() + timedelta(minutes=1)
    assert isinstance(try_claim(stack.database.sessions, wants_gpu, cpu, LEASE, later), Claim)
