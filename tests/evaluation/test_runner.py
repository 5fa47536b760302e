"""``run_evaluation`` dispatching an eval job: a benchmark, a prediction run whose answers the LLM judge then
scores (a scripted OpenAI-compatible endpoint), and existing predictions judged pairwise — with the event
stream each produces (started, monotonic progress, one eval_result per evaluation, finished with the
flattened figures) and SIGTERM during a judge pass."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from tests.evaluation.predict_support import predict_spec, read_jsonl
from tests.serving.support import running_server
from tunery.engine.events import EventSink
from tunery.evaluation.runner import run_evaluation
from tunery.spec import JobSpec
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_SUCCEEDED,
    EvalResultEvent,
    FinishedEvent,
    ProgressEvent,
    StartedEvent,
)


def _reply(content: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "judge", "choices": [choice]}


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    """A judge that gives 7 to every answer and prefers the first one shown ("A") in pairwise mode."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict[str, Any]:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        pairwise = re.search(r"\bA\b", prompt) and re.search(r"\bB\b", prompt)
        return _reply("Verdict: A" if pairwise else "Score: 7\nReason: fine.")

    with running_server(app) as url:
        yield f"{url}/v1"


def run(spec: JobSpec, **options: Any) -> tuple[int, list[Any]]:
    sink = EventSink(None, **options)
    return run_evaluation(spec, sink), sink.events


def check_stream(events: list[Any]) -> None:
    assert isinstance(events[0], StartedEvent) and events[0].stage == "eval"
    steps = [event.step for event in events if isinstance(event, ProgressEvent)]
    assert steps == sorted(steps)
    assert isinstance(events[-1], FinishedEvent)


def test_benchmark_job(tiny_llama: Path, tmp_path: Path) -> None:
    spec = JobSpec.from_mapping(
        {"model_name_or_path": str(tiny_llama), "do_train": False, "task": "mmlu_sample_test", "n_shot": 0,
         "template": "llama3", "output_dir": str(tmp_path)}
    )  # fmt: skip
    code, events = run(spec)
    assert code == EXIT_SUCCEEDED
    check_stream(events)
    (result,) = [event for event in events if isinstance(event, EvalResultEvent)]
    assert result.kind == "benchmark" and "accuracy" in result.metrics and result.breakdown
    assert events[-1].metrics[f"{result.name}/accuracy"] == result.metrics["accuracy"]
    assert events[-1].step == result.samples == events[0].total_steps


def test_predict_then_judge(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, judge_url: str) -> None:
    spec = predict_spec(
        tiny_llama, demo_data_dir, tmp_path, max_samples=3, max_new_tokens=4, judge_model="judge",
        judge_base_url=judge_url, judge_max_concurrency=2,
    )  # fmt: skip
    code, events = run(spec)
    assert code == EXIT_SUCCEEDED, events[-1]
    check_stream(events)
    assert events[0].total_steps == 6  # 3 rows predicted, then 3 judged
    results = [event for event in events if isinstance(event, EvalResultEvent)]
    assert [(r.name, r.kind) for r in results] == [("alpaca_en_demo", "predict"), ("judge", "judge")]
    assert results[1].metrics["judge_score"] == 7.0
    finished = events[-1]
    assert finished.step == 6
    assert finished.metrics["judge/judge_score"] == 7.0 and "alpaca_en_demo/bleu-4" in finished.metrics
    judged = read_jsonl(tmp_path / str(results[1].samples_file))
    assert len(judged) == 3 and all(row["scores"]["judge_score"] == 7.0 and "bleu-4" in row["scores"] for row in judged)


def test_judge_existing_predictions_pairwise(
    tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, judge_url: str
) -> None:
    files = []
    for name in ("a", "b"):
        predicted = predict_spec(tiny_llama, demo_data_dir, tmp_path / name, max_samples=3, max_new_tokens=3)
        assert run(predicted)[0] == EXIT_SUCCEEDED
        files.append(str(tmp_path / name / "generated_predictions.jsonl"))
    spec = JobSpec.from_mapping(
        {"model_name_or_path": str(tiny_llama), "do_train": False, "judge_model": "judge", "judge_base_url": judge_url,
         "judge_mode": "pairwise", "judge_predictions": files, "output_dir": str(tmp_path / "judged")}
    )  # fmt: skip
    code, events = run(spec)
    assert code == EXIT_SUCCEEDED, events[-1]
    check_stream(events)
    (result,) = [event for event in events if isinstance(event, EvalResultEvent)]
    assert result.kind == "judge" and result.samples == 3
    assert {"win_rate_a", "win_rate_b", "tie_rate"} <= set(result.metrics)


def test_sigterm_during_judging(tiny_llama: Path, tmp_path: Path, judge_url: str) -> None:
    rows = tmp_path / "predictions.jsonl"
    rows.write_text(
        "".join(f'{{"index": {i}, "prompt": "q{i}", "label": "a", "predict": "b"}}\n' for i in range(400)),
        encoding="utf-8",
    )
    spec = JobSpec.from_mapping(
        {"model_name_or_path": str(tiny_llama), "do_train": False, "judge_model": "judge", "judge_base_url": judge_url,
         "judge_predictions": str(rows), "judge_max_concurrency": 1, "output_dir": str(tmp_path / "out")}
    )  # fmt: skip
    sent: list[bool] = []

    def terminate(event: Any) -> None:
        if isinstance(event, StartedEvent) and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    code, events = run(spec, listeners=[terminate])
    assert code == EXIT_CANCELLED
    assert isinstance(events[-1], FinishedEvent) and events[-1].outcome == "cancelled"
    assert events[-1].step < 400
