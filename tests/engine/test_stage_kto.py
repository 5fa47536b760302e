"""Stage kto: the desirable/undesirable margin widens on a synthetic task, the demo data trains through the
runner with LF's batch size of one, and LF's ``pref_ftx`` SFT term is added exactly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from tests.engine.pref_support import (
    eval_before_and_after,
    finished,
    one_thread,  # noqa: F401 - an autouse fixture
    progress_metrics,
    row_builder,
    run_stage,
)
from tests.support.train_data import tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.runner import setup_training
from tunery.spec.events import EXIT_SUCCEEDED


def test_kto_widens_the_desirable_undesirable_margin(tiny_llama: Path, tmp_path: Path) -> None:
    before, after = eval_before_and_after(
        tiny_llama,
        tmp_path / "out",
        row_builder("kto", 16, eval_rows=6),
        stage="kto",
        max_steps=8,
        per_device_eval_batch_size=6,
        kto_chosen_weight=1.0,
        kto_rejected_weight=1.5,
    )
    assert abs(before["eval_rewards/margins"]) < 1e-6  # a fresh adapter is the reference
    assert after["eval_rewards/margins"] > 0.1
    assert after["eval_rewards/chosen"] > 0 > after["eval_rewards/rejected"]
    assert after["eval_loss"] < before["eval_loss"] and "eval_kl" in after


def test_kto_trains_on_the_demo_data_with_batches_of_one(tiny_llama: Path, tmp_path: Path, demo_data_dir: Path) -> None:
    out = tmp_path / "out"
    code, events = run_stage(
        tiny_llama,
        out,
        None,
        stage="kto",
        dataset="kto_en_demo",
        dataset_dir=str(demo_data_dir),
        template="llama3",
        cutoff_len=64,
        max_samples=8,
        max_steps=2,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=2,
    )
    assert code == EXIT_SUCCEEDED, finished(events)
    metrics = progress_metrics(events)
    assert len(metrics) == 2 and all("kl" in step for step in metrics)
    assert (out / "adapter_model.safetensors").is_file() and not (out / "ref").exists()


def test_pref_ftx_adds_lf_sft_term(tiny_llama: Path, tmp_path: Path) -> None:
    spec = tiny_spec(tiny_llama, tmp_path / "out", stage="kto", pref_ftx=0.5, per_device_train_batch_size=4)
    with CancelRequest() as cancel:
        trainer = setup_training(spec, EventSink(io.StringIO()), cancel, build_data=row_builder("kto", 8)).trainer
    model = trainer.model
    model.train()
    rows = [trainer.train_dataset[index] for index in range(4)]
    batch = trainer.data_collator(rows)
    with_ftx = float(trainer.compute_loss(model, batch))
    trainer.ftx = 0.0
    without = float(trainer.compute_loss(model, batch))

    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    token_logps = torch.log_softmax(logits[:, :-1].double(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    mask = batch["completion_mask"][:, 1:].double()
    average = (token_logps * mask).sum(1) / mask.sum(1)
    desirable = batch["label"].bool()
    expected = 0.5 * float((-average[desirable]).mean()) / int(desirable.sum()) * len(rows)
    assert with_ftx - without == pytest.approx(expected, abs=1e-5)
