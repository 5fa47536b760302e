"""The checkpoint folders a job writes: the contract between the engine (which writes them) and the services
(which resume a job from the newest complete one). Pure paths, no torch."""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
#: Weight files transformers/peft write; one of them must be present.
WEIGHT_FILES = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: transformers' marker of a checkpoint still being written.
INCOMPLETE_MARKER = "checkpoint-is-incomplete.txt"


def checkpoint_step(path: Path) -> int | None:
    """N for a ``checkpoint-N`` folder, None for other names."""
    match = CHECKPOINT_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


def is_complete_checkpoint(path: Path) -> bool:
    """Trainer state and weights written, no in-progress marker (a crash mid-save leaves it incomplete)."""
    return (
        path.is_dir()
        and (path / TRAINER_STATE).is_file()
        and any((path / name).is_file() for name in WEIGHT_FILES)
        and not (path / INCOMPLETE_MARKER).exists()
    )
