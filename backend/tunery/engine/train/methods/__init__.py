"""Fine-tuning methods: one module and one builder each, found by ``finetuning_type``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.engine.train.errors import invalid_spec
from tunery.engine.train.methods import freeze, full, lora
from tunery.engine.train.methods.base import METHODS, PreparedModel, count_parameters, register_method

if TYPE_CHECKING:
    from tunery.engine.train.model import LoadedModel
    from tunery.spec import JobSpec

__all__ = ["METHODS", "PreparedModel", "apply_method", "count_parameters", "freeze", "full", "lora", "register_method"]


def apply_method(loaded: LoadedModel, spec: JobSpec) -> PreparedModel:
    """Set which parameters train, per ``method.finetuning_type``."""
    name = spec.method.finetuning_type
    builder = METHODS.get(name)
    if builder is None:
        raise invalid_spec("finetuning_type", f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return builder(loaded, spec)
