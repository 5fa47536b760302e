"""transformers ``TrainingArguments`` from the spec's training section, every value set explicitly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from tunery.engine.train.errors import invalid_spec
from tunery.spec.rules_training import best_metric_name

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from tunery.spec import JobSpec


def length_grouping(spec: JobSpec) -> bool:
    """``training.group_by_length``; unset: on for SFT without packing (packed rows are all about as long)."""
    if spec.training.group_by_length is not None:
        return spec.training.group_by_length
    return spec.method.stage == "sft" and not spec.data.packing


def build_training_arguments(spec: JobSpec, *, show_progress_bar: bool = False) -> TrainingArguments:
    """Map the spec onto TrainingArguments. Precision is explicit (transformers/TRL defaults differ by device),
    checkpointing of activations is handled when the model is loaded, and columns are never dropped."""
    from transformers import TrainingArguments

    t = spec.training
    warmup: float = t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio
    sampling = "random"
    if spec.method.disable_shuffling:
        sampling = "sequential"
    elif length_grouping(spec):
        sampling = "group_by_length"
    kwargs: dict[str, Any] = {
        "output_dir": t.output_dir,
        "do_train": t.do_train,
        "do_eval": t.do_eval,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "per_device_eval_batch_size": t.per_device_eval_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "learning_rate": t.learning_rate,
        "num_train_epochs": t.num_train_epochs,
        "max_steps": t.max_steps,
        "lr_scheduler_type": t.lr_scheduler_type,
        "lr_scheduler_kwargs": t.lr_scheduler_kwargs or {},
        "warmup_steps": warmup,
        "weight_decay": t.weight_decay,
        "adam_beta1": t.adam_beta1,
        "adam_beta2": t.adam_beta2,
        "adam_epsilon": t.adam_epsilon,
        "optim": t.optim,
        "max_grad_norm": t.max_grad_norm,
        "logging_strategy": "steps",
        "logging_steps": t.logging_steps,
        "logging_first_step": t.logging_first_step,
        "save_strategy": t.save_strategy,
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        "save_only_model": t.save_only_model,
        "eval_strategy": t.eval_strategy,
        "eval_steps": t.eval_steps,
        "bf16": t.bf16,
        "fp16": t.fp16,
        "tf32": t.tf32,
        "seed": t.seed,
        "data_seed": t.data_seed,
        "neftune_noise_alpha": t.neftune_noise_alpha,
        "activation_checkpointing": False,  # done by tunery.engine.train.model, with LF's defaults
        "report_to": [name for name in t.report_to if name != "none"] or "none",
        "run_name": t.run_name,
        "disable_tqdm": (not show_progress_bar) if t.disable_tqdm is None else t.disable_tqdm,
        "ddp_timeout": t.ddp_timeout,
        "dataloader_num_workers": t.dataloader_num_workers,
        "dataloader_pin_memory": t.dataloader_pin_memory and torch.cuda.is_available(),
        "remove_unused_columns": False,  # the collator needs every column the tokenizer produced
        "train_sampling_strategy": sampling,
        "load_best_model_at_end": t.load_best_model_at_end,
        "metric_for_best_model": best_metric_name(spec),  # loss for early stopping too
        "greater_is_better": t.greater_is_better,
        "label_smoothing_factor": t.label_smoothing_factor,
        "use_cpu": t.use_cpu or not torch.cuda.is_available(),
        "include_num_input_tokens_seen": "non_padding",  # tokens per second in progress events
        "deepspeed": t.deepspeed,
        "fsdp": t.fsdp,
    }
    try:
        return TrainingArguments(**kwargs)
    except ValueError as exc:  # transformers' own cross-checks (e.g. best model vs. strategies)
        raise invalid_spec("training", str(exc)) from exc
