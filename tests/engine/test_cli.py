"""The `tunery` command end to end: train on LF configs and demo data, validate, preview, env."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tunery.engine.events import EventSink
from tunery.engine.train.runner import run_training
from tunery.spec import JobSpec
from tunery.spec.events import EXIT_INVALID, EXIT_SUCCEEDED, FinishedEvent, ProgressEvent, parse_event

LF_CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "lf_configs"


def tunery(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunery.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _lf_job(tmp_path: Path, name: str, model: Path, data_dir: Path) -> Path:
    """A LLaMA-Factory example config with only the model path and dataset_dir changed."""
    raw = yaml.safe_load((LF_CONFIGS / name).read_text())
    raw["model_name_or_path"] = str(model)
    raw["dataset_dir"] = str(data_dir)
    job = tmp_path / name
    job.write_text(yaml.safe_dump(raw))
    return job


def test_train_llamafactory_example_config(tmp_path: Path, tiny_llama: Path, demo_data_dir: Path) -> None:
    job = _lf_job(tmp_path, "llama3_lora_sft.yaml", tiny_llama, demo_data_dir)
    # Overrides only shorten the run for the test; the file itself is LF's, bf16 and eval included.
    result = tunery(
        "train", str(job), "--events", "-", "max_samples=24", "max_steps=2", "gradient_accumulation_steps=2",
        "eval_steps=2", "save_steps=2", "logging_steps=1", "dataloader_num_workers=0", cwd=tmp_path,
    )
    assert result.returncode == EXIT_SUCCEEDED, result.stderr[-3000:]
    events = [parse_event(line) for line in result.stdout.splitlines()]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    kinds = [event.type for event in events]
    assert set(kinds[: kinds.index("started")]) <= {"log"}  # only set-up notes come before "started"
    assert any(isinstance(event, ProgressEvent) and event.loss is not None for event in events)
    assert {"eval", "checkpoint"} <= {event.type for event in events}
    finished = events[-1]
    assert isinstance(finished, FinishedEvent) and finished.outcome == "succeeded"
    out = tmp_path / "saves/llama3-8b/lora/sft"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json",
                 "trainer_log.jsonl", "all_results.json", "training_loss.png", "checkpoint-2"):
        assert (out / name).exists(), name
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert log[-1]["current_steps"] == 2 and log[-1]["total_steps"] == 2


@pytest.mark.parametrize(
    ("dataset", "stage", "template"),
    [
        ("alpaca_en_demo", "sft", "llama3"),
        ("alpaca_zh_demo", "sft", "llama3"),
        ("identity", "sft", "llama3"),
        ("glaive_toolcall_en_demo", "sft", "qwen"),
        ("c4_demo", "pt", None),
        ("wiki_demo", "pt", None),
    ],
)
def test_train_each_demo_dataset(
    tmp_path: Path, tiny_llama: Path, demo_data_dir: Path, dataset: str, stage: str, template: str | None
) -> None:
    spec = JobSpec.from_mapping({
        "model_name_or_path": str(tiny_llama), "stage": stage, "finetuning_type": "lora",
        "dataset": dataset, "dataset_dir": str(demo_data_dir), "template": template or "empty",
        "cutoff_len": 128, "max_samples": 16, "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 100,
        "learning_rate": 1e-3,
    })
    sink = EventSink()
    assert run_training(spec, sink, cache_dir=tmp_path / "cache") == EXIT_SUCCEEDED
    started = next(event for event in sink.events if event.type == "started")
    assert started.type == "started" and started.num_train_examples
    losses = [e.loss for e in sink.events if isinstance(e, ProgressEvent) and e.loss is not None]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()


def _job(tmp_path: Path, model: Path, data_dir: Path, dataset: str) -> Path:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "model_name_or_path": str(model), "dataset": dataset, "dataset_dir": str(data_dir),
        "template": "llama3", "cutoff_len": 64, "output_dir": str(tmp_path / "out"),
    }))
    return job


def test_validate_reports_file_row_and_field(tmp_path: Path, tiny_llama: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"instruction": "Say hi", "output": "hi"},
        {"instruction": "No answer"},
        {"instruction": ["not", "text"], "output": "x"},
    ]
    (data / "mine.json").write_text(json.dumps(rows))
    (data / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    result = tunery("validate", str(_job(tmp_path, tiny_llama, data, "mine")), cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "mine.json, row 2, field 'output'" in result.stdout
    assert "mine.json, row 3, field 'instruction'" in result.stdout
    assert "1/3 rows valid, 2 errors" in result.stdout


def test_validate_unknown_dataset_and_bad_spec(tmp_path: Path, tiny_llama: Path, demo_data_dir: Path) -> None:
    result = tunery("validate", str(_job(tmp_path, tiny_llama, demo_data_dir, "alpaca_en_dem")), cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "alpaca_en_demo" in result.stderr  # the close match is suggested
    result = tunery("validate", str(_job(tmp_path, tiny_llama, demo_data_dir, "identity")), "lora_rnk=4",
                    cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "lora_rnk: unknown key; did you mean 'lora_rank'?" in result.stderr


def test_preview_text_and_jsonl(tmp_path: Path, tiny_llama: Path, demo_data_dir: Path) -> None:
    job = _job(tmp_path, tiny_llama, demo_data_dir, "identity")
    text = tunery("preview", str(job), "--n", "2", cwd=tmp_path)
    assert text.returncode == 0, text.stderr[-2000:]
    assert text.stdout.count("=== Example") == 2
    assert "[[masked]]<|begin_of_text|><|start_header_id|>user" in text.stdout
    assert "[[trained]]" in text.stdout
    assert "truncated by cutoff_len=64" in text.stdout
    jsonl = tunery("preview", str(job), "--n", "3", "--format", "jsonl", cwd=tmp_path)
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert len(row["input_ids"]) == len(row["labels"]) <= 64
        assert -100 in row["labels"] and any(label != -100 for label in row["labels"])


def test_env_lists_versions(tmp_path: Path) -> None:
    result = tunery("env", cwd=tmp_path)
    assert result.returncode == 0
    assert "torch" in result.stdout and "2.13.0" in result.stdout
    assert "transformers" in result.stdout


def test_demo_datasets_are_valid(tmp_path: Path, tiny_model_factory: Callable[..., Path]) -> None:
    from tunery.demo import DEMO_DATA_DIR
    from tunery.engine.data.load import validate_datasets

    for name, stage in (("tunery_identity", "sft"), ("tunery_identity_dpo", "dpo")):
        spec = JobSpec.from_mapping({"model_name_or_path": "m", "dataset": name, "dataset_dir": str(DEMO_DATA_DIR)})
        report = validate_datasets(spec.data, stage)
        assert report.rows_valid == report.rows_total == 20 and not report.errors
