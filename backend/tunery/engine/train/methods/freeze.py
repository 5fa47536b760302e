"""Freeze tuning: train the last (or first) N decoder layers, optionally only some of their modules."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tunery.engine.train.errors import invalid_spec
from tunery.engine.train.methods.base import PreparedModel, finish, register_method, score_head_names
from tunery.engine.train.methods.full import reject_adapters

if TYPE_CHECKING:
    import torch

    from tunery.engine.train.model import LoadedModel
    from tunery.spec import JobSpec

#: ``model.layers.3.mlp.up_proj.weight`` -> layer 3, module ``mlp``.
_LAYER_PARAM = re.compile(r"\.(\d+)\.([^.]+)")


def num_hidden_layers(model: torch.nn.Module) -> int:
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for key in ("num_hidden_layers", "num_layers", "n_layer"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise invalid_spec("finetuning_type", f"{type(model).__name__} does not support freeze tuning (no layer count)")


def trainable_layer_ids(num_layers: int, n: int) -> range:
    """N > 0: the last N layers; N < 0: the first -N layers (clipped to the model's depth)."""
    if n > 0:
        return range(max(0, num_layers - n), num_layers)
    return range(min(-n, num_layers))


@register_method("freeze")
def build_freeze(loaded: LoadedModel, spec: JobSpec) -> PreparedModel:
    reject_adapters(spec)
    method = spec.method
    model = loaded.model
    layers = set(trainable_layer_ids(num_hidden_layers(model), method.freeze_trainable_layers))
    layer_modules, other_modules = _module_names(model)

    wanted = method.freeze_trainable_modules
    train_all_modules = "all" in wanted
    unknown = [name for name in wanted if name != "all" and name not in layer_modules]
    if unknown:
        raise invalid_spec(
            "freeze_trainable_modules",
            f"{', '.join(unknown)} not found; choose from all, " + ", ".join(sorted(layer_modules)),
        )
    extra = method.freeze_extra_modules or []
    unknown = [name for name in extra if name not in other_modules]
    if unknown:
        raise invalid_spec(
            "freeze_extra_modules", f"{', '.join(unknown)} not found; choose from " + ", ".join(sorted(other_modules))
        )

    heads = score_head_names(model)  # a reward model's new score head always learns
    for name, param in model.named_parameters():
        match = _LAYER_PARAM.search(name)
        if match:
            in_layer = int(match.group(1)) in layers
            trainable = in_layer and (train_all_modules or match.group(2) in wanted)
        else:
            trainable = _owner(name) in extra or name.split(".")[0] in heads
        param.requires_grad_(trainable)

    notes = [
        f"trainable layers: {sorted(layers)}",
        f"trainable modules: {', '.join(wanted)}" + (f"; extra: {', '.join(extra)}" if extra else ""),
    ]
    if heads:
        notes.append(f"score head trained: {', '.join(heads)}")
    return finish(model, "freeze", notes)


def _owner(param_name: str) -> str:
    """The module holding a parameter outside the layers: ``model.embed_tokens.weight`` -> ``embed_tokens``."""
    parts = param_name.split(".")
    return parts[-2] if len(parts) >= 2 else parts[0]


def _module_names(model: torch.nn.Module) -> tuple[set[str], set[str]]:
    """(modules inside decoder layers, e.g. self_attn/mlp; modules outside them, e.g. embed_tokens/norm)."""
    layer_modules: set[str] = set()
    other_modules: set[str] = set()
    for name, _ in model.named_parameters():
        match = _LAYER_PARAM.search(name)
        if match:
            layer_modules.add(match.group(2))
        else:
            other_modules.add(_owner(name))
    return layer_modules, other_modules
