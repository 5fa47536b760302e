"""Cross-field rules of the RL stages (ppo, grpo): reward model, reward functions, batch shape, and their keys
refused elsewhere. Registered into ``tunery.spec.rules.RULES`` on import (rules.py imports this module)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tunery.spec.errors import SpecProblem
from tunery.spec.method import MethodSection
from tunery.spec.rewards import REWARD_NAMES, REWARDS, is_user_function
from tunery.spec.rules import method_key_set, rule
from tunery.spec.stages import RL_STAGES, STAGES, stages_using

if TYPE_CHECKING:
    from tunery.spec.job import JobSpec

_OTHER_OPTIONS = {key for name, info in STAGES.items() if name not in RL_STAGES for key in info.options}
#: Method keys only the RL stages read (derived from the stage catalog).
RL_ONLY_KEYS: tuple[str, ...] = tuple(
    sorted(
        {
            key
            for name in RL_STAGES
            for key in STAGES[name].options
            if key in MethodSection.model_fields and key not in _OTHER_OPTIONS
        }
    )
)
#: Every method key some stage lists as its option (ref_model_quantization_bit: refused for all, rules_preference).
_STAGE_METHOD_KEYS = {
    key
    for info in STAGES.values()
    for key in info.options
    if key in MethodSection.model_fields and key != "ref_model_quantization_bit"
}


@rule
def _stage_keys(spec: JobSpec) -> list[SpecProblem]:
    """RL keys on other stages, and other stages' keys on an RL stage, are refused rather than ignored."""
    stage = spec.method.stage
    own = set(STAGES[stage].options)
    keys = _STAGE_METHOD_KEYS - own if stage in RL_STAGES else set(RL_ONLY_KEYS) - own
    problems = []
    for key in sorted(keys):
        if method_key_set(spec, key):
            users = ", ".join(stages_using(key))
            problems.append(SpecProblem(key, f"does not apply to stage {stage} (only to: {users})"))
    return problems


@rule
def _rl_training(spec: JobSpec) -> list[SpecProblem]:
    """Options of token-level training that the RL stages (which generate their own answers) cannot honour."""
    method, training = spec.method, spec.training
    stage = method.stage
    if stage not in RL_STAGES:
        return []
    problems = []
    checks = {
        "compute_accuracy": method.compute_accuracy,
        "group_by_length": bool(training.group_by_length),
        "label_smoothing_factor": training.label_smoothing_factor != 0,
        "neftune_noise_alpha": training.neftune_noise_alpha is not None,
    }
    for key, present in checks.items():
        if present:
            problems.append(SpecProblem(key, f"does not apply to stage {stage} (it trains on generated answers)"))
    uses_disabled_adapter = stage == "ppo" or method.grpo_beta > 0
    if method.finetuning_type == "lora" and method.pissa_init and uses_disabled_adapter and not method.ref_model:
        problems.append(
            SpecProblem(
                "pissa_init",
                f"stage {stage} takes the model with its adapter disabled as the reference, which PiSSA turns into "
                "the residual model; train without pissa_init"
                + (" or set ref_model (the original model)" if stage == "ppo" else ""),
            )
        )
    return problems


@rule
def _reward_funcs(spec: JobSpec) -> list[SpecProblem]:
    problems = []
    for index, func in enumerate(spec.method.reward_funcs):
        where = f"reward_funcs[{index}]"
        if not math.isfinite(func.weight):
            problems.append(SpecProblem(f"{where}.weight", "must be a finite number"))
        info = REWARDS.get(func.name)
        if info is None:
            if not is_user_function(func.name):
                problems.append(
                    SpecProblem(
                        f"{where}.name",
                        f"unknown reward function {func.name!r}; built-ins: {', '.join(REWARD_NAMES)}, "
                        "or a user function written 'package.module:function'",
                    )
                )
            continue
        unknown = sorted(set(func.args) - set(info.args))
        if unknown:
            takes = ", ".join(info.args) if info.args else "no arguments"
            problems.append(SpecProblem(f"{where}.args", f"{func.name} takes {takes}; not {', '.join(unknown)}"))
        missing = [name for name in info.required if name not in func.args]
        if missing:
            problems.append(SpecProblem(f"{where}.args", f"{func.name} needs {', '.join(missing)}"))
    return problems


def _reward_model_problems(spec: JobSpec, needed_by: str) -> list[SpecProblem]:
    method = spec.method
    if not method.reward_model:
        return [
            SpecProblem(
                "reward_model",
                f"{needed_by} needs a reward model: a folder trained with stage rm (reward_model_type lora or "
                "full), or the URL of a /v1/score endpoint (reward_model_type api)",
            )
        ]
    is_url = method.reward_model.startswith(("http://", "https://"))
    if method.reward_model_type == "api" and not is_url:
        return [SpecProblem("reward_model", "must be an http(s) URL of a /v1/score endpoint for reward_model_type api")]
    if method.reward_model_type != "api" and is_url:
        return [SpecProblem("reward_model_type", "must be api when reward_model is a URL")]
    if method.reward_model_adapters and method.reward_model_type != "full":
        return [
            SpecProblem(
                "reward_model_adapters",
                "only applies to reward_model_type full (reward_model is then the base model the adapter applies to)",
            )
        ]
    return []


@rule
def _ppo(spec: JobSpec) -> list[SpecProblem]:
    method, training, data = spec.method, spec.training, spec.data
    if method.stage != "ppo":
        return []
    problems = _reward_model_problems(spec, "stage ppo")
    for key in ("ppo_epochs", "ppo_buffer_size"):
        if getattr(method, key) < 1:
            problems.append(SpecProblem(key, "must be at least 1"))
    if method.ppo_target <= 0:
        problems.append(SpecProblem("ppo_target", "must be above 0 (the KL the adaptive controller aims at)"))
    evaluation = {
        "do_eval": training.do_eval,
        "eval_strategy": training.eval_strategy != "no",
        "val_size": data.val_size > 0,
        "eval_dataset": bool(data.eval_dataset),
    }
    for key in [key for key, present in evaluation.items() if present][:1]:
        problems.append(SpecProblem(key, "stage ppo has no evaluation (as in LLaMA-Factory); remove it"))
    return problems


@rule
def _grpo(spec: JobSpec) -> list[SpecProblem]:
    method, training, generation = spec.method, spec.training, spec.generation
    if method.stage != "grpo":
        return []
    problems = []
    names = [func.name for func in method.reward_funcs]
    if not names:
        problems.append(
            SpecProblem(
                "reward_funcs", "stage grpo needs at least one reward function (e.g. exact_match, or 'pkg.mod:func')"
            )
        )
    if "reward_model" in names:
        problems.extend(_reward_model_problems(spec, "the reward_model reward function"))
    elif method.reward_model:
        problems.append(SpecProblem("reward_model", "is only read by the reward_model reward function; add it"))
    completions = training.per_device_train_batch_size * training.gradient_accumulation_steps
    if completions % method.num_generations:
        problems.append(
            SpecProblem(
                "per_device_train_batch_size",
                f"stage grpo counts completions: per_device_train_batch_size x gradient_accumulation_steps "
                f"({completions}) must be a multiple of num_generations ({method.num_generations})",
            )
        )
    if not generation.do_sample:
        problems.append(SpecProblem("do_sample", "stage grpo samples its answers; do_sample must be true"))
    if generation.num_beams != 1:
        problems.append(SpecProblem("num_beams", "stage grpo samples its answers; num_beams must be 1"))
    return problems
