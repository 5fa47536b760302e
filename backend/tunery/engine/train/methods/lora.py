"""LoRA and its variants (DoRA, rsLoRA, PiSSA init, LoRA+), built with peft."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.train.errors import invalid_spec
from tunery.engine.train.methods.base import OptimizerFactory, PreparedModel, finish, register_method

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from tunery.engine.train.model import LoadedModel
    from tunery.spec import JobSpec
    from tunery.spec.method import MethodSection

logger = logging.getLogger(__name__)


@register_method("lora")
def build_lora(loaded: LoadedModel, spec: JobSpec) -> PreparedModel:
    from peft import PeftModel

    method = spec.method
    model: torch.nn.Module = loaded.model
    notes: list[str] = []
    adapters = spec.model.adapter_name_or_path or []
    to_merge, to_resume = (adapters, None) if method.create_new_adapter else (adapters[:-1], adapters[-1:] or None)
    for path in to_merge:
        model = _load_adapter(model, path, trainable=False).merge_and_unload()
        notes.append(f"merged adapter {path}")
    if to_resume:
        model = _load_adapter(model, to_resume[0], trainable=True)
        notes.append(f"continuing adapter {to_resume[0]}")
    else:
        config = lora_config(model, method, vocab_resized=loaded.vocab_resized)
        model = _get_peft_model(model, config)
        notes.append(f"lora targets: {', '.join(sorted(config.target_modules or []))}")
        if config.modules_to_save:
            notes.append(f"also trained fully: {', '.join(config.modules_to_save)}")
    assert isinstance(model, PeftModel)
    factory = loraplus_optimizer(method) if method.loraplus_lr_ratio else None
    variant = "dora" if method.use_dora else "lora"
    return finish(model, variant, notes, factory)


def lora_config(model: torch.nn.Module, method: MethodSection, *, vocab_resized: bool = False) -> Any:
    """The peft ``LoraConfig`` for a new adapter from the method section (LF semantics)."""
    from peft import LoraConfig, TaskType

    targets = method.lora_target
    target_modules = linear_module_names(model) if targets == ["all"] else list(targets)
    modules_to_save = list(method.additional_target) if method.additional_target else None
    if vocab_resized and modules_to_save is None:
        modules_to_save = _embedding_module_names(model)  # new token rows must be learned
    init: bool | str = True
    if method.pissa_init:
        init = "pissa" if method.pissa_iter == -1 else f"pissa_niter_{method.pissa_iter}"
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=method.lora_rank,
        lora_alpha=method.effective_lora_alpha,
        lora_dropout=method.lora_dropout,
        target_modules=target_modules,
        modules_to_save=modules_to_save,
        use_rslora=method.use_rslora,
        use_dora=method.use_dora,
        init_lora_weights=init,  # type: ignore[arg-type]
    )


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Leaf names of every linear layer except the output head (``lora_target: all``)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.split(".")[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head and name
    }
    if head is not None:
        head_names = {name.split(".")[-1] for name, module in model.named_modules() if module is head}
        names -= head_names
    return sorted(names)


def _embedding_module_names(model: torch.nn.Module) -> list[str]:
    wanted = [model.get_input_embeddings(), model.get_output_embeddings()]  # type: ignore[operator]
    return sorted({name.split(".")[-1] for name, module in model.named_modules() if module in wanted and name})


def _get_peft_model(model: torch.nn.Module, config: Any) -> torch.nn.Module:
    from peft import get_peft_model

    try:
        return get_peft_model(model, config)  # type: ignore[arg-type]
    except ValueError as exc:
        if "not found" not in str(exc) and "Target module" not in str(exc):
            raise
        choices = ", ".join(["all", *linear_module_names(model)])
        raise invalid_spec("lora_target", f"{exc}. Choose from: {choices}") from exc


def _load_adapter(model: torch.nn.Module, path: str, *, trainable: bool) -> Any:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, path, is_trainable=trainable)  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:
        raise invalid_spec("adapter_name_or_path", f"cannot load adapter {path!r}: {exc}") from exc


def loraplus_optimizer(method: MethodSection) -> OptimizerFactory:
    """LoRA+: the B matrices learn ``loraplus_lr_ratio`` times faster than the A matrices."""
    ratio = float(method.loraplus_lr_ratio or 1.0)
    embedding_lr = method.loraplus_lr_embedding

    def build(model: torch.nn.Module, args: TrainingArguments) -> torch.optim.Optimizer:
        from peft.optimizers import create_loraplus_optimizer
        from transformers import Trainer

        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)  # type: ignore[arg-type]
        kwargs = {key: value for key, value in kwargs.items() if key != "lr"}
        optimizer: torch.optim.Optimizer = create_loraplus_optimizer(
            model,  # type: ignore[arg-type]
            optimizer_cls,
            lr=args.learning_rate,
            loraplus_lr_ratio=ratio,
            loraplus_lr_embedding=embedding_lr,
            loraplus_weight_decay=args.weight_decay,
            **kwargs,
        )
        return optimizer

    return build
