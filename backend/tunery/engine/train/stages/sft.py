"""Supervised fine-tuning: next-token prediction on conversations, prompt tokens masked out of the labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tunery.engine.train.stages.base import StageInputs, causal_lm_trainer, register_stage

if TYPE_CHECKING:
    from transformers import EvalPrediction, Trainer

IGNORE_INDEX = -100


@register_stage("sft")
def build_sft(inputs: StageInputs) -> Trainer:
    if inputs.spec.method.compute_accuracy:
        return causal_lm_trainer(
            inputs, compute_metrics=token_accuracy, preprocess_logits_for_metrics=predicted_token_ids
        )
    return causal_lm_trainer(inputs)


def predicted_token_ids(logits: torch.Tensor | tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
    """Keep only the argmax ids during evaluation, not the full vocabulary logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def token_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """Share of answer tokens (labels not masked) the model predicts exactly (LF's ``compute_accuracy``)."""
    predicted: Any = np.asarray(prediction.predictions)
    labels: Any = np.asarray(prediction.label_ids)
    targets, guesses = labels[:, 1:], predicted[:, :-1]  # position t predicts token t + 1
    mask = targets != IGNORE_INDEX
    total = int(mask.sum())
    return {"accuracy": float(((guesses == targets) & mask).sum()) / total if total else 0.0}
