"""A real `tunery worker` process on PostgreSQL + Redis runs real training through the engine CLI."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import redis
import yaml
from sqlalchemy import select

from tests.server.worker_support import (
    FINISHED,
    TRAINING_TIMEOUT,
    RedisServer,
    Stack,
    engine_processes,
    events,
    job_in,
    metric_steps,
    new_job,
    new_project,
    tiny_spec,
    wait_for,
)
from tests.support.tiny_models import SHARED_DATA
from tunery.server.db.models import Artifact, Checkpoint, JobStatus, LogLine, Worker
from tunery.server.live.messages import channel
from tunery.server.services.jobs import cancel_job
from tunery.spec.checkpoints import is_complete_checkpoint


class LiveListener:
    """Collects what the worker publishes on the job's Redis channel."""

    def __init__(self, url: str, job_id: str) -> None:
        self.pubsub = redis.Redis.from_url(url).pubsub()
        self.pubsub.subscribe(channel(job_id))
        self.messages: list[dict[str, Any]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopped.is_set():
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                self.messages.append(json.loads(message["data"]))

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.pubsub.close()


def test_job_runs_end_to_end(stack: Stack, tiny_llama: Path, redis_server: RedisServer) -> None:
    project = new_project(stack.database)
    job_id = new_job(stack.database, project, tiny_spec(tiny_llama, max_steps=4, save_steps=2))
    listener = LiveListener(redis_server.url, job_id)
    stack.worker("w1")
    stack.enqueue(job_id)

    job = wait_for(lambda: job_in(stack.database, job_id, *FINISHED), TRAINING_TIMEOUT, "the job to finish")
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert (job.attempt, job.worker_id, job.gpus, job.error_code) == (1, "w1", [], None)
    assert job.started_at is not None and job.finished_at is not None and job.started_at < job.finished_at
    assert job.lease_expires_at is None

    folder = stack.storage_root / "jobs" / job_id
    written = yaml.safe_load((folder / "job.yaml").read_text())
    assert written["training"]["output_dir"] == str(folder / "output")
    assert written["data"]["dataset_dir"] == str(SHARED_DATA)

    assert metric_steps(stack.database, job_id) == [1, 2, 3, 4]
    rows = events(stack.database, job_id)
    assert [row.seq for row in rows] == list(range(1, job.last_seq + 1))
    types = [row.type for row in rows]
    assert types[0] == "status" and rows[0].payload["status"] == "running"
    assert rows[-1].type == "status" and rows[-1].payload["status"] == "succeeded"
    assert types.count("progress") == 4 and types.count("checkpoint") == 2 and "finished" in types
    assert {row.attempt for row in rows} == {1}

    with stack.database.session() as session:
        checkpoints = session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id)).all()
        artifacts = {a.name: a for a in session.scalars(select(Artifact).where(Artifact.job_id == job_id))}
        log_lines = session.scalars(select(LogLine).where(LogLine.job_id == job_id)).all()
        worker = session.get(Worker, "w1")
    assert sorted(c.step for c in checkpoints) == [2, 4]
    assert {c.path for c in checkpoints} == {f"jobs/{job_id}/output/checkpoint-{s}" for s in (2, 4)}
    kinds = {name: artifact.kind for name, artifact in artifacts.items()}
    assert kinds["adapter_model.safetensors"] == "adapter" and kinds["tokenizer.json"] == "tokenizer"
    assert kinds["all_results.json"] == "results"
    adapter = artifacts["adapter_model.safetensors"]
    data = (stack.storage_root / adapter.path).read_bytes()
    assert adapter.size_bytes == len(data) and adapter.sha256 == hashlib.sha256(data).hexdigest()
    assert log_lines, "the engine's stderr is kept"
    assert worker is not None and worker.status == "online" and worker.slots == 1

    wait_for(lambda: any(m["seq"] == job.last_seq for m in listener.messages), 30, "the last live message")
    listener.close()
    assert sorted(m["seq"] for m in listener.messages) == [row.seq for row in rows]
    assert not engine_processes(stack.storage_root)


def test_engine_failure_fails_the_job_with_its_code(stack: Stack, tiny_llama: Path) -> None:
    project = new_project(stack.database)
    job_id = new_job(stack.database, project, tiny_spec(tiny_llama, dataset="no_such_dataset"))
    stack.worker("w1")
    stack.enqueue(job_id)
    job = wait_for(lambda: job_in(stack.database, job_id, *FINISHED), TRAINING_TIMEOUT, "the job to finish")
    assert job.status == JobStatus.FAILED and job.error_code == "invalid_data", (job.error_code, job.error_message)
    assert "no_such_dataset" in str(job.error_message)
    assert events(stack.database, job_id)[-1].payload == {
        "status": "failed",
        "message": job.error_message,
        "error_code": "invalid_data",
    }
    with stack.database.session() as session:
        assert session.scalars(select(Artifact).where(Artifact.job_id == job_id)).all() == []
    assert not engine_processes(stack.storage_root)


def test_cancel_stops_running_job_with_checkpoint(stack: Stack, tiny_llama: Path) -> None:
    project = new_project(stack.database)
    job_id = new_job(stack.database, project, tiny_spec(tiny_llama, max_steps=1000, save_steps=2))
    stack.worker("w1")
    stack.enqueue(job_id)

    def has_checkpoint() -> bool:
        with stack.database.session() as session:
            return session.scalar(select(Checkpoint.id).where(Checkpoint.job_id == job_id).limit(1)) is not None

    wait_for(has_checkpoint, TRAINING_TIMEOUT, "a first checkpoint")
    assert engine_processes(stack.storage_root)
    with stack.database.session() as session:
        cancel_job(session, job_id)
        session.commit()

    job = wait_for(lambda: job_in(stack.database, job_id, *FINISHED), 300, "the job to stop")
    assert job.status == JobStatus.CANCELLED, job.error_message
    assert job.error_code is None and job.lease_expires_at is None
    finished = [row for row in events(stack.database, job_id) if row.type == "finished"]
    assert len(finished) == 1 and finished[0].payload["outcome"] == "cancelled"
    last = Path(finished[0].payload["checkpoint"])
    assert is_complete_checkpoint(last)
    step = finished[0].payload["step"]
    assert 2 <= step < 1000
    with stack.database.session() as session:
        saved = session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id)).all()
    assert step in saved
    assert not engine_processes(stack.storage_root)


def test_one_slot_runs_two_jobs_one_after_the_other(stack: Stack, tiny_llama: Path) -> None:
    project = new_project(stack.database)
    spec = tiny_spec(tiny_llama, max_steps=3, save_steps=100)
    first, second = new_job(stack.database, project, spec), new_job(stack.database, project, spec)
    stack.worker("w1", concurrency=1)  # one CPU slot; Celery gets a spare process, so both tasks are taken
    stack.enqueue(first)
    stack.enqueue(second)

    done = [
        wait_for(lambda j=job_id: job_in(stack.database, j, *FINISHED), TRAINING_TIMEOUT, "both jobs to finish")
        for job_id in (first, second)
    ]
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 2, [job.error_message for job in done]
    earlier, later = sorted(done, key=lambda job: job.started_at)  # type: ignore[arg-type,return-value]
    assert earlier.finished_at is not None and later.started_at is not None
    assert earlier.finished_at <= later.started_at, "the two jobs overlapped on one slot"


def test_dataset_version_is_validated_on_the_default_queue(stack: Stack) -> None:
    from tunery.server.db.models import Dataset, DatasetVersion
    from tunery.server.worker.queue import enqueue_dataset_validation

    project = new_project(stack.database)
    folder = stack.storage_root / "datasets" / "d1" / "v1"
    folder.mkdir(parents=True)
    rows = [{"instruction": "Say hi", "output": "hi"}, {"instruction": "Say bye"}]
    (folder / "rows.json").write_text(json.dumps(rows))
    (folder / "dataset_info.json").write_text(json.dumps({"greetings": {"file_name": "rows.json"}}))
    with stack.database.session() as session:
        dataset = Dataset(project_id=project, name="greetings")
        session.add(dataset)
        session.flush()
        version = DatasetVersion(
            dataset_id=dataset.id, version=1, content_hash="0" * 64, storage_path="datasets/d1/v1",
            info={"file_name": "rows.json"}, stage="sft", status="pending",
        )  # fmt: skip
        session.add(version)
        session.commit()
        version_id = version.id
    stack.worker("w1", queues="default")
    enqueue_dataset_validation(version_id, settings=stack.settings)

    def validated() -> DatasetVersion | None:
        with stack.database.session() as session:
            row = session.get(DatasetVersion, version_id)
            return row if row is not None and row.status != "pending" else None

    row = wait_for(validated, 300, "the validation task")
    assert (row.status, row.rows_total, row.rows_valid) == ("invalid", 2, 1)
    assert row.report["errors"][0]["row"] == 2 and row.report["errors"][0]["file"] == "rows.json"
