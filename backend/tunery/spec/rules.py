"""Cross-field rules of the job spec, all in one place.

Each rule either fills a value that depends on other fields (like LLaMA-Factory does) or reports a
problem naming the field. Rules run after every section has validated on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tunery.spec.errors import SpecProblem
from tunery.spec.method import UNSUPPORTED_METHOD_OPTIONS, MethodSection
from tunery.spec.model import UNSUPPORTED_MODEL_OPTIONS
from tunery.spec.stages import STAGE_NAMES, STAGE_SHAPES
from tunery.spec.training import UNSUPPORTED_TRAINING_OPTIONS

if TYPE_CHECKING:
    from tunery.spec.job import JobSpec

#: Stages the engine trains: every entry of the stage catalog.
TRAINED_STAGES: tuple[str, ...] = STAGE_NAMES

Rule = Callable[["JobSpec"], list[SpecProblem]]
RULES: list[Rule] = []


def rule(func: Rule) -> Rule:
    RULES.append(func)
    return func


def method_key_set(spec: JobSpec, key: str) -> bool:
    """Whether method key ``key`` differs from its default (a key of another stage is refused only then)."""
    default = MethodSection.model_fields[key].get_default(call_default_factory=True)
    return bool(getattr(spec.method, key) != default)


def apply_rules(spec: JobSpec) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    for check in RULES:
        problems.extend(check(spec))
    return problems


@rule
def _unsupported_options(spec: JobSpec) -> list[SpecProblem]:
    problems = []
    groups = (
        (spec.model, UNSUPPORTED_MODEL_OPTIONS),
        (spec.method, UNSUPPORTED_METHOD_OPTIONS),
        (spec.training, UNSUPPORTED_TRAINING_OPTIONS),
    )
    for section, options in groups:
        for key, off in options.items():
            if getattr(section, key) != off:
                problems.append(
                    SpecProblem(key, f"is a LLaMA-Factory option Tunery does not support; leave it at {off!r}")
                )
    return problems


@rule
def _datasets(spec: JobSpec) -> list[SpecProblem]:
    if spec.training.do_train and not spec.data.dataset:
        return [SpecProblem("dataset", "is required to train (names from dataset_info.json)")]
    return []


@rule
def _precision(spec: JobSpec) -> list[SpecProblem]:
    if spec.training.bf16 and spec.training.fp16:
        return [SpecProblem("bf16", "bf16 and fp16 cannot both be true")]
    return []


@rule
def _packing(spec: JobSpec) -> list[SpecProblem]:
    data = spec.data
    if data.neat_packing and data.packing is False:
        return [SpecProblem("neat_packing", "needs packing; remove packing: false")]
    if data.neat_packing:
        data.packing = True
    elif data.packing is None:
        data.packing = spec.method.stage == "pt"
    return []


@rule
def _token_row_options(spec: JobSpec) -> list[SpecProblem]:
    """Packing, streaming and prompt labels shape the token rows of pt/sft; the preference and RL stages keep
    each prompt apart from its answers and never train prompts (LLaMA-Factory ignores these keys there)."""
    stage = spec.method.stage
    if STAGE_SHAPES[stage] in ("pt", "sft"):
        return []
    data = spec.data
    token_stages = ", ".join(name for name, shape in STAGE_SHAPES.items() if shape in ("pt", "sft"))
    sft = ", ".join(name for name, shape in STAGE_SHAPES.items() if shape == "sft")
    problems = []
    if data.neat_packing or data.packing:
        key = "neat_packing" if data.neat_packing else "packing"
        problems.append(
            SpecProblem(
                key,
                f"does not apply to stage {stage}: its rows keep prompt and answers apart (only to: {token_stages})",
            )
        )
    if data.streaming:
        problems.append(
            SpecProblem("streaming", f"is not supported for stage {stage}: its rows are tokenized up front")
        )
    if data.train_on_prompt:
        problems.append(
            SpecProblem(
                "train_on_prompt", f"does not apply to stage {stage}: prompts are never trained (only to: {sft})"
            )
        )
    if data.mask_history:
        problems.append(
            SpecProblem(
                "mask_history", f"does not apply to stage {stage}: only the last answer is used (only to: {sft})"
            )
        )
    return problems


@rule
def _validation_split(spec: JobSpec) -> list[SpecProblem]:
    data, training = spec.data, spec.training
    problems = []
    if data.val_size >= 1 and data.val_size != int(data.val_size):
        problems.append(SpecProblem("val_size", "must be a fraction below 1 or a whole number of rows"))
    if data.streaming and 0 < data.val_size < 1:
        problems.append(SpecProblem("val_size", "must be a whole number of rows when streaming"))
    has_eval = data.val_size > 0 or bool(data.eval_dataset)
    if training.eval_strategy != "no" and not has_eval:
        problems.append(SpecProblem("eval_strategy", "needs val_size or eval_dataset"))
    if has_eval and training.eval_strategy == "steps" and training.eval_steps is None:
        training.eval_steps = training.logging_steps
    return problems


@rule
def _streaming(spec: JobSpec) -> list[SpecProblem]:
    if spec.data.streaming and spec.training.max_steps <= 0:
        return [SpecProblem("max_steps", "must be set (> 0) when streaming, the dataset has no length")]
    return []


@rule
def _mixing(spec: JobSpec) -> list[SpecProblem]:
    data = spec.data
    if data.interleave_probs is None:
        return []
    if data.mix_strategy == "concat":
        return [SpecProblem("interleave_probs", "only applies to mix_strategy interleave_under/over")]
    count = len(data.dataset or [])
    if len(data.interleave_probs) != count:
        return [SpecProblem("interleave_probs", f"has {len(data.interleave_probs)} values for {count} datasets")]
    if abs(sum(data.interleave_probs) - 1.0) > 1e-6:
        return [SpecProblem("interleave_probs", "must sum to 1")]
    return []


@rule
def _method(spec: JobSpec) -> list[SpecProblem]:
    method = spec.method
    problems = []
    if method.finetuning_type == "freeze" and method.freeze_trainable_layers == 0:
        problems.append(SpecProblem("freeze_trainable_layers", "must not be 0 (N > 0: last N, N < 0: first N)"))
    lora_only = {"use_dora": method.use_dora, "pissa_init": method.pissa_init, "use_rslora": method.use_rslora}
    if method.finetuning_type != "lora":
        for key, enabled in lora_only.items():
            if enabled:
                problems.append(SpecProblem(key, "only applies to finetuning_type: lora"))
    if method.pissa_init and method.use_dora:
        problems.append(SpecProblem("pissa_init", "cannot be combined with use_dora"))
    return problems


@rule
def _resume(spec: JobSpec) -> list[SpecProblem]:
    training = spec.training
    if training.resume_from_checkpoint and training.overwrite_output_dir:
        return [SpecProblem("resume_from_checkpoint", "cannot be combined with overwrite_output_dir")]
    return []


# Stage-specific rule modules register their rules on import (after ``rule`` exists).
from tunery.spec import rules_eval, rules_export, rules_keys, rules_preference, rules_rl, rules_training  # noqa: E402,F401
