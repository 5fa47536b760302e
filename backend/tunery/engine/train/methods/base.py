"""What a fine-tuning method returns, and the registry of methods (one module and builder each)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from tunery.engine.train.model import LoadedModel
    from tunery.spec import JobSpec

#: Builds the optimizer for the prepared model (e.g. LoRA+ learning-rate groups); None = Trainer default.
OptimizerFactory = Callable[[torch.nn.Module, "TrainingArguments"], torch.optim.Optimizer]
#: Saves the final weights into a folder when plain ``save_pretrained`` is not right (e.g. PiSSA conversion).
WeightSaver = Callable[[torch.nn.Module, Path], None]


@dataclass
class PreparedModel:
    """A model whose trainable parameters are set, ready for a stage's trainer."""

    model: torch.nn.Module
    method: str
    trainable_params: int
    total_params: int
    optimizer_factory: OptimizerFactory | None = None
    notes: list[str] = field(default_factory=list)  # human-readable facts for the log (targets, layers)
    save_weights: WeightSaver | None = None


MethodBuilder = Callable[["LoadedModel", "JobSpec"], PreparedModel]
METHODS: dict[str, MethodBuilder] = {}


def register_method(name: str) -> Callable[[MethodBuilder], MethodBuilder]:
    def add(builder: MethodBuilder) -> MethodBuilder:
        if name in METHODS:
            raise RuntimeError(f"fine-tuning method {name!r} registered twice")
        METHODS[name] = builder
        return builder

    return add


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared tensors are counted once."""
    trainable = total = 0
    seen: set[int] = set()
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def score_head_names(model: torch.nn.Module) -> list[str]:
    """Names of the new output head of a sequence classifier (a reward model's ``score``), [] for a causal LM:
    that head is always trained, whatever the method."""
    if not type(model).__name__.endswith("ForSequenceClassification"):
        return []
    return [name for name in ("score", "classifier") if isinstance(getattr(model, name, None), torch.nn.Module)]


def upcast_trainable(model: torch.nn.Module) -> None:
    """Trainable parameters in fp32 (LF does this for mixed-precision training), frozen ones stay as loaded."""
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.to(torch.float32)


def finish(
    model: torch.nn.Module,
    method: str,
    notes: list[str],
    optimizer_factory: OptimizerFactory | None = None,
    save_weights: WeightSaver | None = None,
) -> PreparedModel:
    upcast_trainable(model)
    trainable, total = count_parameters(model)
    return PreparedModel(model, method, trainable, total, optimizer_factory, notes, save_weights)
