"""Training section of the job spec: the optimisation loop, checkpoints, logging and outputs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from tunery.spec.base import Section, split_csv

Strategy = Literal["no", "steps", "epoch"]


class TrainingSection(Section):
    """Hyper-parameters and output settings (the transformers TrainingArguments we honour)."""

    output_dir: str = Field(default="saves/run", description="Where checkpoints and results go.")
    overwrite_output_dir: bool = False
    do_train: bool = True
    do_eval: bool = False
    do_predict: bool = Field(
        default=False,
        description="Generate an answer for every eval_dataset row after training (or instead of it when do_train "
        "is false): generated_predictions.jsonl and predict_results.json (BLEU-4, ROUGE) in output_dir.",
    )
    per_device_train_batch_size: int = Field(default=1, gt=0)
    per_device_eval_batch_size: int = Field(default=1, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    learning_rate: float = Field(default=5e-5, gt=0)
    num_train_epochs: float = Field(default=3.0, gt=0)
    max_steps: int = Field(default=-1, description="Stop after this many optimiser steps (-1: off).")
    lr_scheduler_type: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
        "reduce_lr_on_plateau",
        "cosine_with_min_lr",
        "warmup_stable_decay",
    ] = "linear"
    lr_scheduler_kwargs: dict[str, Any] | None = None
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    optim: str = "adamw_torch"
    max_grad_norm: float = 1.0
    logging_steps: float = Field(default=10, gt=0)
    logging_first_step: bool = False
    save_strategy: Strategy = "steps"
    save_steps: float = Field(default=500, gt=0)
    save_total_limit: int | None = Field(default=None, gt=0)
    save_only_model: bool = False
    eval_strategy: Strategy = "no"
    eval_steps: float | None = Field(default=None, gt=0)
    bf16: bool = False
    fp16: bool = False
    tf32: bool | None = None
    seed: int = 42
    data_seed: int | None = None
    resume_from_checkpoint: str | None = Field(
        default=None, description="A checkpoint folder, or 'auto' for the newest valid one in output_dir."
    )
    neftune_noise_alpha: float | None = Field(default=None, gt=0)
    gradient_checkpointing: bool = False
    report_to: list[str] = Field(default_factory=lambda: ["none"])
    run_name: str | None = None
    logging_dir: str | None = None
    disable_tqdm: bool | None = None
    ddp_timeout: int = 1800
    dataloader_num_workers: int = 0
    dataloader_pin_memory: bool = True
    remove_unused_columns: bool = False
    group_by_length: bool | None = Field(
        default=None,
        description=(
            "Batch rows of similar length together (random megabatches sorted by length, batches shuffled): "
            "far less padding to compute. Unset: on for SFT without packing, off otherwise (Tunery's default; "
            "LLaMA-Factory's is off). true/false: always / never."
        ),
    )
    deepspeed: str | None = None
    fsdp: str | list[str] | None = None
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    predict_with_generate: bool = Field(
        default=False, description="Must be true with do_predict (as in LLaMA-Factory): predictions are generated."
    )
    generation_max_length: int | None = Field(
        default=None, description="Not used (refused): max_new_tokens limits answers, as in LLaMA-Factory."
    )
    torch_compile: bool = False
    label_smoothing_factor: float = 0.0
    use_cpu: bool = False
    push_to_hub: bool = False

    _split = field_validator("report_to", mode="before")(split_csv)

    @field_validator("report_to", mode="before")
    @classmethod
    def _none_report(cls, value: object) -> object:
        return ["none"] if value is None else value


UNSUPPORTED_TRAINING_OPTIONS: dict[str, object] = {
    "push_to_hub": False,
    "torch_compile": False,
}
