"""What a stage gets to build its trainer, and the registry of stages (pt, sft; dpo/kto/rm come later)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments

    from tunery.engine.train.data import TrainingDataLike
    from tunery.engine.train.methods.base import PreparedModel
    from tunery.spec import JobSpec


@dataclass
class StageInputs:
    spec: JobSpec
    prepared: PreparedModel
    tokenizer: PreTrainedTokenizerBase
    data: TrainingDataLike
    args: TrainingArguments
    callbacks: list[TrainerCallback] = field(default_factory=list)


StageBuilder = Callable[[StageInputs], "Trainer"]
STAGES: dict[str, StageBuilder] = {}


def register_stage(name: str) -> Callable[[StageBuilder], StageBuilder]:
    def add(builder: StageBuilder) -> StageBuilder:
        if name in STAGES:
            raise RuntimeError(f"stage {name!r} registered twice")
        STAGES[name] = builder
        return builder

    return add


def causal_lm_trainer(inputs: StageInputs, **extra: Any) -> Trainer:
    """A next-token-prediction Trainer over the tokenized data (labels already masked by tokenization)."""
    from tunery.engine.train.stages.trainer import TuneryTrainer

    return TuneryTrainer(
        model=inputs.prepared.model,
        args=inputs.args,
        train_dataset=inputs.data.train_dataset,
        eval_dataset=inputs.data.eval_dataset,
        data_collator=inputs.data.collator,
        processing_class=inputs.tokenizer,
        callbacks=list(inputs.callbacks),
        optimizer_factory=inputs.prepared.optimizer_factory,
        **extra,
    )
