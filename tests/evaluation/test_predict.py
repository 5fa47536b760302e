"""Prediction runs on a tiny model with the transformers engine: answers equal transformers' own greedy
``generate`` (what LLaMA-Factory's predict calls), with and without a LoRA adapter; the event stream, the
output files, seeded sampling, several eval sets, SIGTERM, and failures that name the spec key."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.evaluation.predict_support import predict_spec, read_jsonl, reference_answers
from tests.serving.support import make_adapter
from tunery.engine.events import EventSink
from tunery.evaluation.runner import run_evaluation
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_INVALID,
    EXIT_SUCCEEDED,
    EvalResultEvent,
    FailedEvent,
    FinishedEvent,
    ProgressEvent,
    StartedEvent,
)


def run(spec: Any, **sink_options: Any) -> tuple[int, list[Any]]:
    sink = EventSink(None, **sink_options)
    code = run_evaluation(spec, sink)
    return code, sink.events


def test_greedy_answers_events_and_files(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path) -> None:
    spec = predict_spec(tiny_llama, demo_data_dir, tmp_path)
    code, events = run(spec)
    assert code == EXIT_SUCCEEDED
    kinds = [type(event) for event in events]
    assert kinds[0] is StartedEvent and kinds[-1] is FinishedEvent
    started = events[0]
    facts = (started.stage, started.trainable_params, started.total_steps, started.num_eval_examples)
    assert facts == ("eval", 0, 6, 6)
    progress = [event for event in events if isinstance(event, ProgressEvent)]
    assert progress[-1].step == progress[-1].total_steps == 6
    assert [event.step for event in progress] == sorted(event.step for event in progress)
    (result,) = [event for event in events if isinstance(event, EvalResultEvent)]
    assert (result.name, result.kind, result.samples, result.samples_file) == (
        "alpaca_en_demo", "predict", 6, "generated_predictions.jsonl"
    )  # fmt: skip
    expected = {"bleu-4", "rouge-1", "rouge-2", "rouge-l", "exact_match", "length_mean", "length_max"}
    assert expected | {"samples_per_second"} == set(result.metrics)
    finished = events[-1]
    assert finished.outcome == "succeeded" and finished.step == 6
    assert finished.metrics == {f"alpaca_en_demo/{key}": value for key, value in result.metrics.items()}

    rows = read_jsonl(tmp_path / "generated_predictions.jsonl")
    assert [row["index"] for row in rows] == list(range(6))
    assert [row["predict"] for row in rows] == reference_answers(spec)
    source = json.loads((demo_data_dir / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    for row, item in zip(rows, source, strict=False):
        assert row["prompt"].startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n")
        assert row["prompt"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
        assert item["instruction"] in row["prompt"]
        assert row["label"] == item["output"]  # the stop token is special: skipped
        assert set(row["scores"]) == {"bleu-4", "rouge-1", "rouge-2", "rouge-l", "exact_match", "length"}
        assert row["scores"]["length"] <= 12
    results = json.loads((tmp_path / "predict_results.json").read_text())
    for key in ("bleu-4", "rouge-1", "rouge-2", "rouge-l", "exact_match", "length_mean", "length_max"):
        assert results[f"predict_{key}"] == result.metrics[key]
    assert results["predict_samples"] == 6 and results["predict_runtime"] > 0
    assert json.loads((tmp_path / "all_results.json").read_text())["predict_bleu-4"] == result.metrics["bleu-4"]


def test_adapter_changes_answers_like_peft(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tiny_llama, tmp_path / "adapter", seed=3)
    spec = predict_spec(
        tiny_llama, demo_data_dir, tmp_path / "out", adapter_name_or_path=str(adapter), max_samples=4,
        eval_metrics="bleu",
    )  # fmt: skip
    code, events = run(spec)
    assert code == EXIT_SUCCEEDED
    rows = read_jsonl(tmp_path / "out" / "generated_predictions.jsonl")
    assert [row["predict"] for row in rows] == reference_answers(spec, adapter)
    assert [row["predict"] for row in rows] != reference_answers(spec)
    (result,) = [event for event in events if isinstance(event, EvalResultEvent)]
    assert set(result.metrics) == {"bleu-4", "samples_per_second"}
    assert set(rows[0]["scores"]) == {"bleu-4"}


def test_sampling_is_seeded_per_row(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path) -> None:
    keys = {"do_sample": True, "temperature": 1.5, "top_p": 0.95, "top_k": 40, "max_samples": 5}
    answers = []
    for name, batch in (("a", 4), ("b", 1)):
        spec = predict_spec(tiny_llama, demo_data_dir, tmp_path / name, per_device_eval_batch_size=batch, **keys)
        assert run(spec)[0] == EXIT_SUCCEEDED
        answers.append([row["predict"] for row in read_jsonl(tmp_path / name / "generated_predictions.jsonl")])
    assert answers[0] == answers[1]  # the same rows, batched differently
    greedy = predict_spec(tiny_llama, demo_data_dir, tmp_path / "g", max_samples=5)
    assert answers[0] != reference_answers(greedy)


def test_each_eval_dataset_is_its_own_result(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path) -> None:
    spec = predict_spec(
        tiny_llama, demo_data_dir, tmp_path, eval_dataset="alpaca_en_demo,alpaca_zh_demo", eval_on_each_dataset=True,
        max_samples=3, max_new_tokens=4,
    )  # fmt: skip
    code, events = run(spec)
    assert code == EXIT_SUCCEEDED
    results = [event for event in events if isinstance(event, EvalResultEvent)]
    assert [(r.name, r.samples_file, r.samples) for r in results] == [
        ("alpaca_en_demo", "generated_predictions_alpaca_en_demo.jsonl", 3),
        ("alpaca_zh_demo", "generated_predictions_alpaca_zh_demo.jsonl", 3),
    ]
    assert "alpaca_zh_demo/rouge-l" in events[-1].metrics
    zh = read_jsonl(tmp_path / "generated_predictions_alpaca_zh_demo.jsonl")
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in row["label"]) for row in zh)
    figures = json.loads((tmp_path / "predict_results.json").read_text())
    assert figures["predict_alpaca_en_demo_samples"] == figures["predict_alpaca_zh_demo_samples"] == 3


def test_sigterm_cancels(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path) -> None:
    spec = predict_spec(
        tiny_llama, demo_data_dir, tmp_path, max_samples=200, max_new_tokens=64, per_device_eval_batch_size=1
    )
    sent = []

    def terminate(event: Any) -> None:
        if isinstance(event, StartedEvent) and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    code, events = run(spec, listeners=[terminate])
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is put back
    assert code == EXIT_CANCELLED
    assert isinstance(events[-1], FinishedEvent) and events[-1].outcome == "cancelled"
    assert events[-1].step < 200
    assert not (tmp_path / "generated_predictions.jsonl").exists()


@pytest.mark.parametrize(
    ("keys", "code", "field"),
    [
        ({"eval_dataset": "no_such_dataset"}, "invalid_data", "no_such_dataset"),
        ({"cutoff_len": 5000}, "invalid_spec", "cutoff_len"),
        ({"adapter_name_or_path": "/nonexistent/adapter"}, "invalid_spec", "adapter_name_or_path: "),
    ],
)
def test_failures_name_what_is_wrong(
    tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, keys: dict[str, Any], code: str, field: str
) -> None:
    spec = predict_spec(tiny_llama, demo_data_dir, tmp_path, max_samples=2, **keys)
    if "cutoff_len" in keys:  # a prompt as long as the whole context
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"default_system": "word " * 4200})})
    exit_code, events = run(spec)
    assert exit_code != EXIT_SUCCEEDED
    failed = events[-1]
    assert isinstance(failed, FailedEvent)
    assert failed.code == code and field in failed.message
    assert exit_code == EXIT_INVALID


def test_missing_vllm_names_infer_backend(
    tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNERY_VLLM_PYTHON", str(tmp_path / "no-python"))
    spec = predict_spec(tiny_llama, demo_data_dir, tmp_path, infer_backend="vllm", max_samples=2)
    code, events = run(spec)
    assert code == EXIT_INVALID
    assert isinstance(events[-1], FailedEvent) and events[-1].message.startswith("infer_backend: vllm is not installed")


def test_scoring_in_worker_processes_gives_the_same_figures(
    tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunery.evaluation import scoring

    figures = []
    for name, threshold in (("here", 10**9), ("workers", 0)):
        monkeypatch.setattr(scoring, "BACKGROUND_MIN_ROWS", threshold)
        monkeypatch.setattr(scoring, "CHUNK", 2)
        monkeypatch.setattr(scoring, "LOOKAHEAD", 2)
        spec = predict_spec(tiny_llama, demo_data_dir, tmp_path / name, eval_dataset="alpaca_zh_demo", max_samples=5)
        code, events = run(spec)
        assert code == EXIT_SUCCEEDED
        (result,) = [event for event in events if isinstance(event, EvalResultEvent)]
        rows = read_jsonl(tmp_path / name / "generated_predictions.jsonl")
        figures.append(({k: v for k, v in result.metrics.items() if k != "samples_per_second"}, rows))
    assert figures[0] == figures[1]
