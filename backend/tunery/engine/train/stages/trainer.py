"""The transformers Trainer the stages share, plus what the methods may ask of it (a custom optimizer)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from tunery.engine.train.methods.base import OptimizerFactory


class TuneryTrainer(Trainer):
    """``Trainer`` that builds the optimizer with the method's factory when it has one (e.g. LoRA+)."""

    def __init__(self, *args: Any, optimizer_factory: OptimizerFactory | None = None, **kwargs: Any) -> None:
        self.optimizer_factory = optimizer_factory
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        target = self.model if model is None else model
        if self.optimizer is None and self.optimizer_factory is not None and target is not None:
            self.optimizer = self.optimizer_factory(target, self.args)
        return super().create_optimizer(model)  # type: ignore[no-any-return]
