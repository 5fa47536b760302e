"""Cross-field rules of the preference stages (rm, dpo, kto): their keys on other stages, loss-specific keys,
and what TRL cannot do. Registered into ``tunery.spec.rules.RULES`` on import (rules.py imports this module);
keys of the RL stages are checked in ``rules_rl``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.spec.errors import SpecProblem
from tunery.spec.method import MethodSection
from tunery.spec.rules import method_key_set, rule
from tunery.spec.stages import PREFERENCE_STAGES, RL_STAGES, STAGES, stages_using

if TYPE_CHECKING:
    from tunery.spec.job import JobSpec

#: Method keys the preference stages read (derived from the stage catalog).
PREFERENCE_KEYS: tuple[str, ...] = tuple(
    sorted({key for name in ("dpo", "kto") for key in STAGES[name].options if key in MethodSection.model_fields})
)


@rule
def _preference_keys_elsewhere(spec: JobSpec) -> list[SpecProblem]:
    """Preference keys on stages that do not read them are refused, not ignored (RL stages: rules_rl)."""
    stage = spec.method.stage
    problems = []
    if spec.method.pref_bco_weight != 0:
        problems.append(
            SpecProblem(
                "pref_bco_weight",
                "is not supported: TRL 1.x dropped the running reward baseline LLaMA-Factory's BCO term needs; "
                "leave it at 0",
            )
        )
    if spec.method.ref_model_quantization_bit is not None:
        problems.append(
            SpecProblem(
                "ref_model_quantization_bit",
                "is not supported: quantized models need bitsandbytes, which Tunery does not ship; leave it unset",
            )
        )
    if stage in RL_STAGES:
        return problems
    own = set(STAGES[stage].options)
    for key in PREFERENCE_KEYS:
        if key not in own and key != "ref_model_quantization_bit" and method_key_set(spec, key):
            problems.append(
                SpecProblem(key, f"does not apply to stage {stage} (only to: {', '.join(stages_using(key))})")
            )
    return problems


@rule
def _dpo_losses(spec: JobSpec) -> list[SpecProblem]:
    method = spec.method
    if method.stage != "dpo":
        return []
    loss = method.pref_loss
    problems = []
    if loss == "kto_pair":
        problems.append(
            SpecProblem(
                "pref_loss",
                "kto_pair was removed from TRL's DPO trainer (LLaMA-Factory 0.9.5 fails on it too); train on "
                "desirable/undesirable tags with stage: kto",
            )
        )
    if method.dpo_label_smoothing != 0 and loss != "sigmoid":
        problems.append(SpecProblem("dpo_label_smoothing", "only applies to pref_loss: sigmoid (conservative DPO)"))
    elif not 0 <= method.dpo_label_smoothing < 0.5:
        problems.append(SpecProblem("dpo_label_smoothing", "must be at least 0 and below 0.5"))
    if method_key_set(spec, "simpo_gamma") and loss != "simpo":
        problems.append(SpecProblem("simpo_gamma", "only applies to pref_loss: simpo"))
    if loss in ("orpo", "simpo"):
        for key in ("ref_model", "ref_model_adapters"):
            if getattr(method, key):
                problems.append(SpecProblem(key, f"pref_loss {loss} uses no reference model; remove {key}"))
    return problems


@rule
def _preference_training(spec: JobSpec) -> list[SpecProblem]:
    method, training = spec.method, spec.training
    stage = method.stage
    if stage not in PREFERENCE_STAGES:
        return []
    problems = []
    if stage in ("dpo", "kto"):
        if method.pref_beta <= 0:
            problems.append(SpecProblem("pref_beta", "must be above 0"))
        if method.pref_ftx < 0:
            problems.append(SpecProblem("pref_ftx", "must be 0 or more"))
        if method.ref_model_adapters and not method.ref_model:
            problems.append(
                SpecProblem("ref_model_adapters", "needs ref_model (the base model the adapters are merged into)")
            )
        if method.finetuning_type == "lora" and method.pissa_init and not method.ref_model:
            problems.append(
                SpecProblem(
                    "pissa_init",
                    f"stage {stage} takes the model with its adapter disabled as the reference, which PiSSA turns "
                    "into the residual model; set ref_model (the original model) or train without pissa_init",
                )
            )
        if method.compute_accuracy:
            problems.append(
                SpecProblem("compute_accuracy", f"does not apply to stage {stage}; it reports rewards/accuracies")
            )
    if stage == "kto":
        for key in ("kto_chosen_weight", "kto_rejected_weight"):
            if getattr(method, key) <= 0:
                problems.append(SpecProblem(key, "must be above 0"))
    if training.group_by_length:
        problems.append(
            SpecProblem("group_by_length", f"does not apply to stage {stage}: its rows are pairs, not token rows")
        )
    if training.label_smoothing_factor != 0:
        hint = "; use dpo_label_smoothing" if stage == "dpo" else ""
        problems.append(
            SpecProblem("label_smoothing_factor", f"does not apply to stage {stage} (a token-level loss option){hint}")
        )
    return problems
