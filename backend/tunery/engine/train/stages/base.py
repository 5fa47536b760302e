"""What a stage gets to build its trainer, and the registry of stages (with the kind of model each trains)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments

    from tunery.engine.train.data import TrainingDataLike
    from tunery.engine.train.methods.base import PreparedModel
    from tunery.engine.train.model import ModelKind
    from tunery.spec import JobSpec


@dataclass
class StageInputs:
    spec: JobSpec
    prepared: PreparedModel
    tokenizer: PreTrainedTokenizerBase
    data: TrainingDataLike
    args: TrainingArguments
    callbacks: list[TrainerCallback] = field(default_factory=list)
    #: the chat template the data was rendered with (generating stages stop answers at its stop words)
    template: Any = None


StageBuilder = Callable[[StageInputs], "Trainer"]
STAGES: dict[str, StageBuilder] = {}
#: The kind of model a stage trains, when not a causal LM (e.g. rm: a one-output sequence classifier).
STAGE_MODEL_KINDS: dict[str, ModelKind] = {}


def register_stage(name: str, *, model_kind: ModelKind = "causal_lm") -> Callable[[StageBuilder], StageBuilder]:
    def add(builder: StageBuilder) -> StageBuilder:
        if name in STAGES:
            raise RuntimeError(f"stage {name!r} registered twice")
        STAGES[name] = builder
        STAGE_MODEL_KINDS[name] = model_kind
        return builder

    return add


def model_kind(stage: str) -> ModelKind:
    """Which model the runner loads for ``stage``."""
    return STAGE_MODEL_KINDS.get(stage, "causal_lm")


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
