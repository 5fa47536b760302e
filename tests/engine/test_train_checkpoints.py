"""Checkpoints: retention, choosing one to resume from, and resuming to the same weights."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.support.train_data import tiny_data_builder, tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.checkpoints import latest_valid_checkpoint, resolve_resume
from tunery.engine.train.errors import TrainingError
from tunery.engine.train.runner import run_training
from tunery.spec.checkpoints import is_complete_checkpoint
from tunery.spec.events import (
    EXIT_INVALID,
    EXIT_SUCCEEDED,
    FailedEvent,
    StartedEvent,
    parse_event,
)


def run(model_dir: Path, output_dir: Path, **keys: Any) -> tuple[int, list[Any]]:
    stream = io.StringIO()
    spec = tiny_spec(model_dir, output_dir, **keys)
    code = run_training(spec, EventSink(stream), build_data=tiny_data_builder())
    return code, [parse_event(line) for line in stream.getvalue().splitlines()]


def fake_checkpoint(folder: Path, *, state: bool = True, weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    if state:
        (folder / "trainer_state.json").write_text("{}")
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"x")
    return folder


def test_checkpoint_every_save_steps_keeps_the_newest(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, events = run(tiny_llama, out, max_steps=8, save_steps=2, save_total_limit=2)
    assert code == EXIT_SUCCEEDED
    assert [e.step for e in events if e.type == "checkpoint"] == [2, 4, 6, 8]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]
    assert all(is_complete_checkpoint(p) for p in out.glob("checkpoint-*"))


def test_latest_valid_checkpoint_skips_half_written_ones(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "checkpoint-2")
    fake_checkpoint(tmp_path / "checkpoint-10")
    fake_checkpoint(tmp_path / "checkpoint-12", state=False)  # crashed before trainer_state.json
    fake_checkpoint(tmp_path / "checkpoint-14", weights=False)
    (fake_checkpoint(tmp_path / "checkpoint-16") / "checkpoint-is-incomplete.txt").write_text("saving")
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_valid_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # by step number, not name order


def test_resume_choices_are_checked(tiny_llama: Path, tmp_path: Path) -> None:
    spec = tiny_spec(tiny_llama, tmp_path, resume_from_checkpoint="auto")
    with pytest.raises(TrainingError, match="no complete checkpoint"):
        resolve_resume(spec.training)
    broken = fake_checkpoint(tmp_path / "checkpoint-3", state=False)
    code, events = run(tiny_llama, tmp_path / "other", resume_from_checkpoint=str(broken))
    assert code == EXIT_INVALID
    failed = events[-1]
    assert isinstance(failed, FailedEvent) and "resume_from_checkpoint" in failed.message


@pytest.mark.parametrize("finetuning_type", ["lora", "full"])
def test_resumed_run_reaches_the_same_weights(tiny_llama: Path, tmp_path: Path, finetuning_type: str) -> None:
    keys: dict[str, Any] = {
        "finetuning_type": finetuning_type,
        "learning_rate": 5e-3 if finetuning_type == "lora" else 1e-3,
        "max_steps": 6,
        "save_steps": 3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 2,
        "gradient_accumulation_steps": 2,
        "weight_decay": 0.01,
    }
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(tiny_llama, straight, **keys)[0] == EXIT_SUCCEEDED

    # The interrupted run: only its step-3 checkpoint survives; it resumes from there.
    resumed.mkdir()
    shutil.copytree(straight / "checkpoint-3", resumed / "checkpoint-3")
    code, events = run(tiny_llama, resumed, resume_from_checkpoint="auto", **keys)
    assert code == EXIT_SUCCEEDED
    started = next(e for e in events if isinstance(e, StartedEvent))
    assert started.resumed_from == str(resumed / "checkpoint-3")
    assert [e.step for e in events if e.type == "progress" and e.loss is not None] == [4, 5, 6]

    weights = "adapter_model.safetensors" if finetuning_type == "lora" else "model.safetensors"
    expected, actual = load_file(str(straight / weights)), load_file(str(resumed / weights))
    halfway = load_file(str(straight / "checkpoint-3" / weights))
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.allclose(expected[name], actual[name], atol=1e-6), name
    assert any(not torch.equal(expected[name], halfway[name]) for name in expected)  # it did train after step 3
