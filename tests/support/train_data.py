"""Tiny tokenized datasets and job specs for the training tests (stands in for the tokenize pipeline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunery.spec import JobSpec

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Give three tips for staying healthy: eat well, sleep, move.",
    "0123456789 counting numbers in order is easy.",
    "A tiny model learns this tiny dataset by heart.",
]


@dataclass
class TinyTrainingData:
    """Same fields as tunery.engine.tokenize.pipeline.TrainingData."""

    train_dataset: list[dict[str, list[int]]]
    eval_dataset: list[dict[str, list[int]]] | None
    collator: Any
    stats: dict[str, Any] = field(default_factory=dict)


class PadCollator:
    """Right-pads input_ids/attention_mask/labels to the longest row of the batch."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        pads = {"input_ids": self.pad_id, "attention_mask": 0, "labels": -100}
        return {
            key: torch.tensor([row[key] + [pad] * (width - len(row[key])) for row in rows])
            for key, pad in pads.items()
        }


def tokenize_rows(tokenizer: Any, texts: list[str], stage: str) -> list[dict[str, list[int]]]:
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        labels = list(ids)
        if stage == "sft":  # the first third plays the prompt: not trained on
            cut = len(ids) // 3
            labels = [-100] * cut + ids[cut:]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return rows


def tiny_data_builder(repeat: int = 4, eval_rows: int = 0, texts: list[str] | None = None) -> Any:
    """A DataBuilder for run_training: ``texts`` (default TEXTS) repeated ``repeat`` times, optional eval rows."""

    def build(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> TinyTrainingData:
        rows = tokenize_rows(tokenizer, texts or TEXTS, spec.method.stage)
        eval_dataset = rows[:eval_rows] if eval_rows else None
        return TinyTrainingData(rows * repeat, eval_dataset, PadCollator(tokenizer.pad_token_id))

    return build


def tiny_spec(model_dir: Path, output_dir: Path, **keys: Any) -> JobSpec:
    """A job on the tiny model: few steps, log every step, fast (no gradient checkpointing) unless overridden."""
    flat: dict[str, Any] = {
        "model_name_or_path": str(model_dir),
        "dataset": "tiny",
        "stage": "sft",
        "template": "default",
        "finetuning_type": "lora",
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-2,
        "max_steps": 6,
        "logging_steps": 1,
        "save_steps": 1000,
        "lr_scheduler_type": "constant",
        "disable_gradient_checkpointing": True,
        "optim": "adamw_torch",
        "seed": 7,
    }
    flat.update(keys)
    return JobSpec.from_mapping(flat)
