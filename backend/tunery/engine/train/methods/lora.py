"""LoRA and its variants (DoRA, rsLoRA, PiSSA init, LoRA+), built with peft."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.train.errors import invalid_spec
from tunery.engine.train.methods.base import (
    OptimizerFactory,
    PreparedModel,
    WeightSaver,
    finish,
    register_method,
    score_head_names,
)

#: Where the PiSSA-initialised adapter waits (inside output_dir) until the final conversion.
PISSA_INIT_DIR = "pissa_init"

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
    saver = None
    if method.pissa_init and not to_resume:
        saver = pissa_converting_saver(model, Path(spec.training.output_dir) / PISSA_INIT_DIR)
        notes.append("PiSSA: the final adapter is converted to plain LoRA (rank doubled) for the original model")
    variant = "dora" if method.use_dora else "lora"
    return finish(model, variant, notes, factory, saver)


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
    # a reward model: peft's SEQ_CLS task trains and saves the score head with the adapter (modules_to_save)
    task = TaskType.SEQ_CLS if score_head_names(model) else TaskType.CAUSAL_LM
    return LoraConfig(
        task_type=task,
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
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    score_heads = set(score_head_names(model))
    names = {
        name.split(".")[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head and name and name not in score_heads
    }
    if head is not None:
        head_names = {name.split(".")[-1] for name, module in model.named_modules() if module is head}
        names -= head_names
    return sorted(names)


def _embedding_module_names(model: torch.nn.Module) -> list[str]:
    wanted = [getattr(model, getter)() for getter in ("get_input_embeddings", "get_output_embeddings")]
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


def pissa_converting_saver(model: Any, init_dir: Path) -> WeightSaver:
    """Keep the PiSSA-initialised adapter now; at the end save the trained one converted to a plain LoRA that
    applies to the original (not the residual) base model."""
    config = model.peft_config["default"]
    init_mode = config.init_lora_weights
    config.init_lora_weights = True  # saved as a plain adapter, so loading it does not redo the SVD
    model.save_pretrained(str(init_dir))
    config.init_lora_weights = init_mode

    def save(trained: torch.nn.Module, folder: Path) -> None:
        trained.save_pretrained(  # type: ignore[operator]
            str(folder), path_initial_model_for_weight_conversion=str(init_dir)
        )
        shutil.rmtree(init_dir, ignore_errors=True)

    return save


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
