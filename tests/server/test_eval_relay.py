"""The relay keeps what evaluation events report: eval results (once per name across attempts), the best
checkpoint (one per job), early stopping; recorded event streams fed through the relay, no engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.server.worker_support import Stack, claim_as_w, job_row, new_job, new_project, relay_stack
from tunery.server.db.models import Checkpoint, EvalResult, Job, JobKind, JobStatus
from tunery.server.worker.artifacts import kind_of
from tunery.server.worker.relay import EventRelay
from tunery.server.worker.runner import ENGINE_COMMANDS
from tunery.spec.events import (
    EVENT_ADAPTER,
    BestCheckpointEvent,
    CheckpointEvent,
    EvalResultEvent,
    FinishedEvent,
    ProgressEvent,
    StartedEvent,
)

SPEC = {"model": {"model_name_or_path": "tiny"}}


@pytest.fixture
def stack(pg_url: str, tmp_path: Path) -> Iterator[Stack]:
    with relay_stack(tmp_path, pg_url) as stack:
        yield stack


def relay_for(stack: Stack, job_id: str) -> EventRelay:
    return EventRelay(stack.database.sessions, claim_as_w(stack, job_id), stack.storage_root, lambda *_: None)


def line(event_type: type[Any], **fields: Any) -> str:
    return EVENT_ADAPTER.dump_json(event_type(**fields)).decode()


def results(stack: Stack, job_id: str) -> dict[str, tuple[int, str, dict[str, Any], Any, str | None, int]]:
    with stack.database.session() as session:
        rows = session.scalars(select(EvalResult).where(EvalResult.job_id == job_id))
        return {r.name: (r.attempt, r.kind, r.metrics, r.breakdown, r.samples_file, r.samples) for r in rows}


def checkpoints(stack: Stack, job_id: str) -> dict[int, tuple[str, bool, bool]]:
    with stack.database.session() as session:
        rows = session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id))
        return {c.step: (c.path, c.best, c.deleted) for c in rows}


def eval_stream(first_rouge: float) -> list[str]:
    """What `tunery eval` prints for a prediction run over one dataset followed by a judge pass."""
    return [
        line(
            StartedEvent,
            seq=1,
            stage="eval",
            finetuning_type="lora",
            total_steps=4,
            num_train_examples=None,
            num_eval_examples=4,
            trainable_params=0,
            total_params=100,
            device="cpu",
        ),
        line(ProgressEvent, seq=2, step=4, total_steps=4, epoch=0, elapsed_seconds=1.0),
        line(
            EvalResultEvent,
            seq=3,
            name="greetings",
            kind="predict",
            metrics={"bleu-4": 12.5, "rouge-l": first_rouge},
            samples_file="generated_predictions.jsonl",
            samples=4,
        ),
        line(
            EvalResultEvent,
            seq=4,
            name="judge",
            kind="judge",
            metrics={"judge_score": 7.5, "judge_failures": 0},
            samples_file="judge/judged.jsonl",
            samples=4,
        ),
        line(FinishedEvent, seq=5, outcome="succeeded", step=4, output_dir="/x", metrics={"greetings/bleu-4": 12.5}),
    ]


def test_eval_results_are_kept_once_per_name_across_attempts(stack: Stack) -> None:
    assert ENGINE_COMMANDS[JobKind.EVAL] == "eval"
    job_id = new_job(stack.database, new_project(stack.database), SPEC, kind=JobKind.EVAL)
    relay = relay_for(stack, job_id)
    for text in eval_stream(30.0):
        assert relay.feed(text) is None
    output = f"jobs/{job_id}/output"
    assert results(stack, job_id) == {
        "greetings": (1, "predict", {"bleu-4": 12.5, "rouge-l": 30.0}, {}, f"{output}/generated_predictions.jsonl", 4),
        "judge": (1, "judge", {"judge_score": 7.5, "judge_failures": 0}, {}, f"{output}/judge/judged.jsonl", 4),
    }
    for text in eval_stream(30.0)[2:4]:  # the same events again (a replay): nothing changes
        relay.feed(text)
    assert len(results(stack, job_id)) == 2

    with stack.database.sessions.begin() as session:  # the reaper re-queues the job: a new attempt
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED, lease_owner=None))
    relay = relay_for(stack, job_id)
    for text in eval_stream(40.0)[:3]:
        relay.feed(text)
    stored = results(stack, job_id)
    assert stored["greetings"][:3] == (2, "predict", {"bleu-4": 12.5, "rouge-l": 40.0})
    assert stored["judge"][0] == 1  # not reported again (yet): the first attempt's stays


def test_a_benchmark_breakdown_and_unsafe_sample_paths(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC, kind=JobKind.EVAL)
    relay = relay_for(stack, job_id)
    breakdown = {"subject": {"abstract_algebra": 50.0}, "category": {"STEM": 50.0, "Average": 50.0}}
    for seq, name, samples_file in ((1, "mmlu_sample_test", "../../escape.jsonl"), (2, "other", "/etc/passwd")):
        relay.feed(
            line(
                EvalResultEvent,
                seq=seq,
                name=name,
                kind="benchmark",
                metrics={"accuracy": 50.0},
                breakdown=breakdown,
                samples_file=samples_file,
                samples=2,
            )
        )
    stored = results(stack, job_id)
    assert stored["mmlu_sample_test"][3] == breakdown
    assert stored["mmlu_sample_test"][4] is None and stored["other"][4] is None  # never read outside the output


def test_best_checkpoint_is_one_per_job_and_early_stopping_is_kept(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    relay = relay_for(stack, job_id)
    output = stack.storage_root / "jobs" / job_id / "output"
    for step in (2, 4, 6):
        (output / f"checkpoint-{step}").mkdir(parents=True)
    relative = f"jobs/{job_id}/output"
    stream = [
        line(CheckpointEvent, seq=1, step=2, path=str(output / "checkpoint-2")),
        line(BestCheckpointEvent, seq=2, step=2, path=str(output / "checkpoint-2"), metric="eval_loss", value=1.5),
        line(BestCheckpointEvent, seq=3, step=4, path=str(output / "checkpoint-4"), metric="eval_loss", value=1.2),
    ]
    for text in stream:
        relay.feed(text)
    # the best checkpoint may be reported before its checkpoint event: its row exists already
    assert checkpoints(stack, job_id) == {
        2: (f"{relative}/checkpoint-2", False, False),
        4: (f"{relative}/checkpoint-4", True, False),
    }
    relay.feed(line(CheckpointEvent, seq=4, step=4, path=str(output / "checkpoint-4")))
    relay.feed(line(CheckpointEvent, seq=5, step=6, path=str(output / "checkpoint-6")))
    assert checkpoints(stack, job_id)[4] == (f"{relative}/checkpoint-4", True, False)
    assert job_row(stack.database, job_id).best_checkpoint_step == 4
    assert not job_row(stack.database, job_id).stopped_early

    finished = line(
        FinishedEvent,
        seq=6,
        outcome="succeeded",
        step=6,
        output_dir=str(output),
        best_checkpoint=str(output / "checkpoint-2"),
        stopped_early=True,
    )
    relay.feed(finished)
    job = job_row(stack.database, job_id)
    assert (job.best_checkpoint_step, job.stopped_early) == (2, True)
    assert {step for step, (_, best, _) in checkpoints(stack, job_id).items() if best} == {2}


def test_eval_outputs_are_results_artifacts() -> None:
    for name in ("generated_predictions.jsonl", "predict_results.json", "results.json", "results.log", "x.jsonl"):
        assert kind_of(name) == "results", name


def test_job_and_checkpoint_responses_show_the_best(stack: Stack) -> None:
    """The API's fields for what the relay stored (read through the schemas the routes use)."""
    from tunery.server.api.schemas.jobs import CheckpointPublic, JobPublic

    job_id = new_job(stack.database, new_project(stack.database), SPEC)
    relay = relay_for(stack, job_id)
    output = stack.storage_root / "jobs" / job_id / "output"
    relay.feed(line(BestCheckpointEvent, seq=1, step=3, path=str(output / "checkpoint-3"), metric="m", value=1.0))
    with stack.database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        public: Mapping[str, Any] = JobPublic.model_validate({**job.__dict__, "dataset_versions": []}).model_dump()
        rows = session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id)).all()
        assert [CheckpointPublic.model_validate(row).best for row in rows] == [True]
    assert (public["best_checkpoint_step"], public["stopped_early"]) == (3, False)
