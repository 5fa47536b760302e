"""The relay of engine events into PostgreSQL: numbering, idempotence, metrics per step, lease fencing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.server.worker_support import Stack, claim_as_w, events, job_row, new_job, new_project, relay_stack
from tunery.server.db.models import Checkpoint, Job, JobStatus, LogLine, Metric
from tunery.server.worker.relay import EventRelay, LeaseLost, LogRelay
from tunery.spec.events import EVENT_ADAPTER, CheckpointEvent, EvalEvent, FinishedEvent, ProgressEvent

SPEC = {"model": {"model_name_or_path": "tiny"}}


@pytest.fixture
def stack(pg_url: str, tmp_path: Path) -> Iterator[Stack]:
    with relay_stack(tmp_path, pg_url) as stack:
        yield stack


def requeue(stack: Stack, job_id: str) -> None:
    """What the reaper does to a dead attempt, as far as the relay cares."""
    with stack.database.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED, lease_owner=None))


def line(event_type: type[Any], **fields: Any) -> str:
    return EVENT_ADAPTER.dump_json(event_type(**fields)).decode()


def progress(seq: int, step: int, loss: float) -> str:
    return line(ProgressEvent, seq=seq, step=step, total_steps=4, epoch=step / 4, loss=loss, elapsed_seconds=1.0)


class Published:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, job_id: str, message: Mapping[str, Any]) -> None:
        self.messages.append(dict(message))


def metrics(stack: Stack, job_id: str) -> dict[int, tuple[int, dict[str, Any]]]:
    with stack.database.session() as session:
        rows = session.scalars(select(Metric).where(Metric.job_id == job_id)).all()
        return {row.step: (row.attempt, row.values) for row in rows}


def test_events_are_numbered_after_the_claim_and_stored_once(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    attempt = claim_as_w(stack, job_id)
    published = Published()
    relay = EventRelay(stack.database.sessions, attempt, stack.storage_root, published)
    for text in (progress(1, 1, 2.0), progress(2, 2, 1.5), progress(2, 2, 1.5)):  # the last one repeats seq 2
        assert relay.feed(text) is None
    assert relay.feed("not an event: some library printed this") == "not an event: some library printed this"

    rows = events(stack.database, job_id)
    assert [(row.seq, row.type) for row in rows] == [(1, "status"), (2, "progress"), (3, "progress")]
    assert rows[2].payload["loss"] == 1.5 and "seq" not in rows[2].payload
    assert [m["seq"] for m in published.messages] == [2, 3, 3]
    assert published.messages[0]["type"] == "progress" and published.messages[0]["attempt"] == 1
    job = job_row(stack.database, job_id)
    assert job.last_seq == 3 and job.progress["step"] == 2
    assert metrics(stack, job_id) == {1: (1, {"loss": 2.0, "epoch": 0.25}), 2: (1, {"loss": 1.5, "epoch": 0.5})}


def test_a_resumed_attempt_stores_each_step_once(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    first = claim_as_w(stack, job_id)
    relay = EventRelay(stack.database.sessions, first, stack.storage_root, Published())
    for seq, step in ((1, 1), (2, 2), (3, 3)):
        relay.feed(progress(seq, step, 3.0 - step / 10))
    relay.feed(line(EvalEvent, seq=4, step=3, epoch=0.75, metrics={"eval_loss": 9.0}))
    requeue(stack, job_id)

    second = claim_as_w(stack, job_id)  # resumed from a checkpoint at step 2: step 3 comes again
    assert second.seq_offset == 6  # 1 (running) + 4 engine events + 1 (running, attempt 2)
    relay = EventRelay(stack.database.sessions, second, stack.storage_root, Published())
    relay.feed(progress(1, 3, 0.5))
    relay.feed(progress(2, 4, 0.4))
    stored = metrics(stack, job_id)
    assert sorted(stored) == [1, 2, 3, 4]
    assert stored[3] == (2, {"loss": 0.5, "epoch": 0.75})  # replaced, eval of the dead attempt dropped
    assert stored[2][0] == 1 and stored[4][0] == 2
    rows = events(stack.database, job_id)
    assert [row.seq for row in rows] == list(range(1, 9))
    assert [row.attempt for row in rows] == [1] * 5 + [2] * 3


def test_eval_metrics_merge_into_the_step(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    relay = EventRelay(stack.database.sessions, claim_as_w(stack, job_id), stack.storage_root, Published())
    relay.feed(progress(1, 2, 1.0))
    relay.feed(line(EvalEvent, seq=2, step=2, epoch=0.5, metrics={"eval_loss": 1.25}))
    assert metrics(stack, job_id)[2] == (1, {"loss": 1.0, "epoch": 0.5, "eval_loss": 1.25})


def test_checkpoints_are_stored_relative_and_removed_ones_marked(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    relay = EventRelay(stack.database.sessions, claim_as_w(stack, job_id), stack.storage_root, Published())
    output = stack.storage_root / "jobs" / job_id / "output"
    for step in (2, 4):
        (output / f"checkpoint-{step}").mkdir(parents=True)
    relay.feed(line(CheckpointEvent, seq=1, step=2, path=str(output / "checkpoint-2")))
    (output / "checkpoint-2").rmdir()  # save_total_limit=1 removed it when saving the next one
    relay.feed(line(CheckpointEvent, seq=2, step=4, path=str(output / "checkpoint-4")))
    with stack.database.session() as session:
        rows = {c.step: (c.path, c.deleted) for c in session.scalars(select(Checkpoint))}
    assert rows == {
        2: (f"jobs/{job_id}/output/checkpoint-2", True),
        4: (f"jobs/{job_id}/output/checkpoint-4", False),
    }


def test_an_attempt_that_lost_its_lease_writes_nothing(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    attempt = claim_as_w(stack, job_id)
    relay = EventRelay(stack.database.sessions, attempt, stack.storage_root, Published())
    requeue(stack, job_id)
    with pytest.raises(LeaseLost):
        relay.feed(progress(1, 1, 1.0))
    finished = line(FinishedEvent, seq=2, outcome="succeeded", step=1, output_dir="/x")
    with pytest.raises(LeaseLost):
        relay.feed(finished)
    assert relay.terminal is None
    assert [row.type for row in events(stack.database, job_id)] == ["status"]
    assert metrics(stack, job_id) == {}


def test_log_lines_continue_numbering_across_attempts(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    logs = LogRelay(stack.database.sessions, claim_as_w(stack, job_id))
    logs.add("loading model\n")
    logs.add("Loading weights:   0%|     | 0/21\rLoading weights: 100%|█████| 21/21\n")
    logs.add("\n")
    logs.flush()
    requeue(stack, job_id)
    logs = LogRelay(stack.database.sessions, claim_as_w(stack, job_id))
    logs.add("resuming\n")
    logs.flush()
    with stack.database.session() as session:
        rows = session.execute(select(LogLine.seq, LogLine.attempt, LogLine.line).order_by(LogLine.seq)).all()
    assert [tuple(row) for row in rows] == [
        (1, 1, "loading model"),
        (2, 1, "Loading weights: 100%|█████| 21/21"),
        (3, 2, "resuming"),
    ]
