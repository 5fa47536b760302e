"""Pre-training (continued): next-token prediction on raw text; every token is a label."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.engine.train.stages.base import StageInputs, causal_lm_trainer, register_stage

if TYPE_CHECKING:
    from transformers import Trainer


@register_stage("pt")
def build_pt(inputs: StageInputs) -> Trainer:
    return causal_lm_trainer(inputs)
