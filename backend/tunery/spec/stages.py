"""The training stages: one catalog, torch-free, that the spec, rules, engine, API and dashboard derive from.

The engine registers one trainer builder per entry (``tunery.engine.train.stages``; a test checks both lists
are the same); the API publishes the catalog (``GET /api/stages``) and the dashboard builds its form from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: What a stage needs from each dataset row (``tunery.engine.data.formats.shapes``):
#: pt: raw text; sft: a conversation ending with the answer; pairwise: prompt + chosen/rejected answers
#: (``ranking: true``); kto: prompt + answer + a boolean desirable tag; prompt: prompts only, an answer column
#: (if any) is the reference that rewards compare with.
DataShape = Literal["pt", "sft", "pairwise", "kto", "prompt"]


@dataclass(frozen=True)
class StageInfo:
    name: str
    title: str
    summary: str
    data: DataShape
    data_help: str
    #: spec keys (beyond the common ones) that apply to this stage; the form shows only these
    options: tuple[str, ...] = ()
    #: metric names (or ``prefix/`` groups) the stage reports besides loss, lr and grad_norm
    metrics: tuple[str, ...] = ()
    #: whether the result is a reward model (scored through /v1/score) rather than a generator
    reward_model: bool = False


_PREF = ("pref_beta", "pref_loss", "pref_ftx", "simpo_gamma", "dpo_label_smoothing")
_REF = ("ref_model", "ref_model_adapters", "ref_model_quantization_bit")
_REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/", "logits/")
_GEN = ("max_new_tokens", "temperature", "top_p", "top_k")

STAGE_CATALOG: tuple[StageInfo, ...] = (
    StageInfo(
        "sft",
        "Supervised fine-tuning",
        "Learns to answer like the dataset's responses.",
        "sft",
        "Conversations or instruction/response rows; the answer is trained, the prompt is masked.",
        metrics=("accuracy",),
    ),
    StageInfo(
        "pt",
        "Continued pre-training",
        "Next-token prediction on raw text (domain adaptation).",
        "pt",
        "Plain text rows (a 'text' column or a txt file); every token is trained.",
    ),
    StageInfo(
        "rm",
        "Reward model",
        "Learns to score answers: the chosen answer of a pair higher than the rejected one.",
        "pairwise",
        "Preference pairs (ranking: true): a prompt with a chosen and a rejected answer.",
        metrics=("accuracy", "rewards/chosen", "rewards/rejected", "rewards/margins"),
        reward_model=True,
    ),
    StageInfo(
        "dpo",
        "Preference optimisation (DPO, IPO, hinge, ORPO, SimPO)",
        "Moves the model towards chosen answers and away from rejected ones, without a reward model.",
        "pairwise",
        "Preference pairs (ranking: true): a prompt with a chosen and a rejected answer.",
        options=(*_PREF, *_REF),
        metrics=_REWARDS,
    ),
    StageInfo(
        "kto",
        "KTO",
        "Learns from answers tagged desirable or undesirable, no pairs needed.",
        "kto",
        "A prompt, one answer and a boolean tag (kto_tag) saying whether the answer is desirable.",
        options=("pref_beta", "pref_ftx", "kto_chosen_weight", "kto_rejected_weight", *_REF),
        metrics=("kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/", "logits/"),
    ),
    StageInfo(
        "ppo",
        "PPO with a reward model",
        "Generates answers, scores them with a reward model and optimises the policy against it (RLHF).",
        "prompt",
        "Prompts (an answer column is ignored); needs a reward model trained with stage rm or an API.",
        options=(
            "reward_model",
            "reward_model_adapters",
            "reward_model_type",
            "ppo_epochs",
            "ppo_buffer_size",
            "ppo_score_norm",
            "ppo_whiten_rewards",
            "ppo_target",
            "max_completion_length",
            *_REF,
            *_GEN,
        ),
        metrics=("reward", "kl", "policy_loss", "value_loss", "completion_length", "ppo/"),
    ),
    StageInfo(
        "grpo",
        "GRPO with reward functions",
        "Samples several answers per prompt and reinforces those that reward functions score above the group.",
        "prompt",
        "Prompts, optionally with a reference answer column that reward functions such as exact_match compare to.",
        options=(
            "reward_funcs",
            "num_generations",
            "grpo_beta",
            "grpo_epsilon",
            "max_completion_length",
            "reward_model",
            "reward_model_adapters",
            "reward_model_type",
            *_GEN,
        ),
        metrics=("reward", "reward_std", "kl", "completion_length", "rewards/"),
    ),
)

STAGES: dict[str, StageInfo] = {info.name: info for info in STAGE_CATALOG}
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)
#: Shape of each stage's data, for the data layer and the datasets screen.
STAGE_SHAPES: dict[str, DataShape] = {info.name: info.data for info in STAGE_CATALOG}


def stages_for_shape(shape: DataShape) -> list[str]:
    """Stages a dataset of this shape can feed."""
    return [info.name for info in STAGE_CATALOG if info.data == shape]


def stages_fed_by(shape: DataShape) -> list[str]:
    """Stages a dataset whose rows have this shape can feed: those of its shape; conversations (sft) also feed
    the prompt-only stages, their answer becoming the reference that rewards compare with. The data layer's
    error messages, the dataset API and job submission all use this one rule."""
    fed = stages_for_shape(shape)
    return [*fed, *stages_for_shape("prompt")] if shape == "sft" else fed


def stages_using(key: str) -> list[str]:
    """Stages that list ``key`` among their options."""
    return [info.name for info in STAGE_CATALOG if key in info.options]


#: Stages that learn from preferences (pairs or KTO tags), and those that generate their own answers.
PREFERENCE_STAGES: tuple[str, ...] = (*stages_for_shape("pairwise"), *stages_for_shape("kto"))
RL_STAGES: tuple[str, ...] = tuple(stages_for_shape("prompt"))
