"""``tunery eval`` and ``tunery train`` with ``do_predict`` end to end (the command in a subprocess, as the
worker runs it): LLaMA-Factory's own predict YAML, one event stream, the trained adapter predicting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.evaluation.predict_support import predict_spec, read_jsonl, reference_answers
from tests.serving.support import make_adapter
from tunery.spec.events import EXIT_INVALID, EXIT_SUCCEEDED, EvalResultEvent, FinishedEvent, parse_event

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def tunery(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunery.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _job(tmp_path: Path, raw: dict[str, Any]) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return job


def test_eval_runs_llamafactory_predict_config(tmp_path: Path, tiny_llama: Path, demo_data_dir: Path) -> None:
    adapter = make_adapter(tiny_llama, tmp_path / "adapter", seed=5)
    raw = yaml.safe_load((FIXTURES / "llama3_lora_predict.yaml").read_text())
    raw.update(model_name_or_path=str(tiny_llama), adapter_name_or_path=str(adapter), dataset_dir=str(demo_data_dir))
    raw.pop("trust_remote_code")  # the tiny model needs no remote code
    result = tunery(
        "eval", str(_job(tmp_path, raw)), "--events", "-", "max_samples=3", "max_new_tokens=8", "do_sample=false",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == EXIT_SUCCEEDED, result.stderr[-3000:]
    events = [parse_event(line) for line in result.stdout.splitlines()]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type in ("log", "started") and events[-1].type == "finished"
    (result_event,) = [event for event in events if isinstance(event, EvalResultEvent)]
    assert result_event.name == "identity,alpaca_en_demo" and result_event.samples == 6
    out = tmp_path / "saves/llama3-8b/lora/predict"
    rows = read_jsonl(out / "generated_predictions.jsonl")
    spec = predict_spec(
        tiny_llama, demo_data_dir, out, eval_dataset="identity,alpaca_en_demo", max_samples=3, max_new_tokens=8,
        adapter_name_or_path=str(adapter),
    )  # fmt: skip
    assert [row["predict"] for row in rows] == reference_answers(spec, adapter)
    assert "predict_rouge-l" in json.loads((out / "predict_results.json").read_text())


def test_eval_refuses_training_and_names_keys(tmp_path: Path, tiny_llama: Path, demo_data_dir: Path) -> None:
    job = _job(tmp_path, {"model_name_or_path": str(tiny_llama), "eval_dataset": "identity", "template": "llama3"})
    result = tunery("eval", str(job), "do_train=true", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "do_train: an eval job does not train" in result.stderr
    result = tunery("eval", str(job), "num_beams=4", "predict_with_generate=false", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "num_beams: beam search is not supported" in result.stderr
    assert "predict_with_generate: must be true with do_predict" in result.stderr


def test_train_then_predict(tmp_path: Path, tiny_llama: Path, demo_data_dir: Path) -> None:
    out = tmp_path / "out"
    raw = {
        "model_name_or_path": str(tiny_llama), "stage": "sft", "finetuning_type": "lora", "template": "llama3",
        "dataset": "alpaca_en_demo", "eval_dataset": "identity", "dataset_dir": str(demo_data_dir),
        "max_samples": 4, "max_steps": 2, "learning_rate": 0.05, "logging_steps": 1, "output_dir": str(out),
        "do_predict": True, "predict_with_generate": True, "max_new_tokens": 8, "do_sample": False,
        "per_device_eval_batch_size": 2, "report_to": "none",
    }  # fmt: skip
    events_file = tmp_path / "events.jsonl"
    result = tunery("train", str(_job(tmp_path, raw)), "--events", str(events_file), cwd=tmp_path)
    assert result.returncode == EXIT_SUCCEEDED, result.stderr[-3000:]
    events = [parse_event(line) for line in events_file.read_text().splitlines()]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert [event.type for event in events].count("started") == 1  # training's; the prediction's is not relayed
    finished = [event for event in events if isinstance(event, FinishedEvent)]
    assert len(finished) == 1 and events[-1] is finished[0] and finished[0].outcome == "succeeded"
    assert finished[0].step == 2 and "train_loss" in finished[0].metrics and "identity/bleu-4" in finished[0].metrics
    assert events[-2].type == "eval_result"
    rows = read_jsonl(out / "generated_predictions.jsonl")
    assert len(rows) == 4
    spec = predict_spec(tiny_llama, demo_data_dir, out, eval_dataset="identity", max_samples=4, max_new_tokens=8)
    assert [row["predict"] for row in rows] == reference_answers(spec, out)  # the trained adapter answers
    assert (out / "adapter_model.safetensors").exists()
    assert "predict_bleu-4" in json.loads((out / "all_results.json").read_text())
