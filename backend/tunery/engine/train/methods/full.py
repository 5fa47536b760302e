"""Full fine-tuning: every parameter is trained."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.engine.train.errors import invalid_spec
from tunery.engine.train.methods.base import PreparedModel, finish, register_method

if TYPE_CHECKING:
    from tunery.engine.train.model import LoadedModel
    from tunery.spec import JobSpec


def reject_adapters(spec: JobSpec) -> None:
    """Like LLaMA-Factory, adapters to start from only make sense for LoRA."""
    if spec.model.adapter_name_or_path:
        raise invalid_spec(
            "adapter_name_or_path",
            f"only applies to finetuning_type: lora (got {spec.method.finetuning_type}); "
            "merge the adapter into the model first",
        )


@register_method("full")
def build_full(loaded: LoadedModel, spec: JobSpec) -> PreparedModel:
    reject_adapters(spec)
    model = loaded.model
    for param in model.parameters():
        param.requires_grad_(True)
    return finish(model, "full", ["all parameters are trained"])
