"""Training stages: one module and one builder each, found by ``method.stage``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.engine.train.errors import invalid_spec
from tunery.engine.train.stages import dpo, grpo, kto, ppo, pt, rm, sft
from tunery.engine.train.stages.base import STAGES, StageInputs, model_kind, register_stage

if TYPE_CHECKING:
    from transformers import Trainer

__all__ = [
    "STAGES",
    "StageInputs",
    "build_trainer",
    "dpo",
    "grpo",
    "kto",
    "model_kind",
    "ppo",
    "pt",
    "register_stage",
    "rm",
    "sft",
]


def build_trainer(inputs: StageInputs) -> Trainer:
    """The Trainer for ``method.stage``."""
    name = inputs.spec.method.stage
    builder = STAGES.get(name)
    if builder is None:
        raise invalid_spec("stage", f"stage {name!r} is not trainable; choose from {', '.join(STAGES)}")
    return builder(inputs)
