"""Supervised fine-tuning: next-token prediction on conversations, prompt tokens masked out of the labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.engine.train.stages.base import StageInputs, causal_lm_trainer, register_stage

if TYPE_CHECKING:
    from transformers import Trainer


@register_stage("sft")
def build_sft(inputs: StageInputs) -> Trainer:
    return causal_lm_trainer(inputs)
