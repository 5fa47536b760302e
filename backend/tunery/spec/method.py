"""Method section of the job spec: training stage and which parameters are trained."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunery.spec.base import Section, split_csv
from tunery.spec.stages import STAGE_NAMES

if TYPE_CHECKING:
    Stage = str
else:
    Stage = Literal[STAGE_NAMES]  # derived from the stage catalog (tunery.spec.stages)
FinetuningType = Literal["lora", "freeze", "full"]


class RewardFuncSpec(BaseModel):
    """One GRPO reward function and its weight in the total reward."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Built-in name or 'package.module:function'.")
    weight: float = 1.0
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the function.")


class MethodSection(Section):
    """Stage (pt, sft, ...) and fine-tuning type (lora, freeze, full) with their options."""

    stage: Stage = Field(default="sft", description="Training stage.")
    finetuning_type: FinetuningType = Field(default="lora", description="Which weights are trained.")
    # LoRA
    lora_rank: int = Field(default=8, gt=0)
    lora_alpha: int | None = Field(default=None, description="Defaults to 2 * lora_rank.")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_target: list[str] = Field(
        default_factory=lambda: ["all"], description="Module names, or 'all' for every linear layer."
    )
    additional_target: list[str] | None = None
    loraplus_lr_ratio: float | None = Field(default=None, gt=0)
    loraplus_lr_embedding: float = 1e-6
    use_rslora: bool = False
    use_dora: bool = False
    pissa_init: bool = False
    pissa_iter: int = 16
    pissa_convert: bool = False
    create_new_adapter: bool = False
    # Freeze
    freeze_trainable_layers: int = Field(
        default=2, description="Last N layers (N > 0) or first -N layers (N < 0) are trained."
    )
    freeze_trainable_modules: list[str] = Field(default_factory=lambda: ["all"])
    freeze_extra_modules: list[str] | None = None
    # Multimodal freezing: Tunery trains text-only models, so only the defaults are accepted
    freeze_vision_tower: bool = True
    freeze_multi_modal_projector: bool = True
    freeze_language_model: bool = False
    # Preference / RL options (trained by the preference stages)
    pref_beta: float = 0.1
    pref_ftx: float = 0.0
    pref_bco_weight: float = 0.0
    pref_loss: Literal["sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo"] = "sigmoid"
    dpo_label_smoothing: float = 0.0
    kto_chosen_weight: float = 1.0
    kto_rejected_weight: float = 1.0
    simpo_gamma: float = 0.5
    ref_model: str | None = None
    ref_model_adapters: str | None = None
    ref_model_quantization_bit: int | None = None
    reward_model: str | None = None
    reward_model_adapters: str | None = None
    reward_model_type: Literal["lora", "full", "api"] = "lora"
    ppo_buffer_size: int = 1
    ppo_epochs: int = 4
    ppo_score_norm: bool = False
    ppo_target: float = 6.0
    ppo_whiten_rewards: bool = False
    # GRPO (beyond LLaMA-Factory; TRL's GRPOConfig names, prefixed where they would be ambiguous)
    reward_funcs: list[RewardFuncSpec] = Field(
        default_factory=list,
        description="GRPO reward functions: built-in names (exact_match, regex, length, reward_model) or "
        "'package.module:function', each with a weight; 'a,b' or a list of {name, weight, args}.",
    )
    num_generations: int = Field(default=4, ge=2, description="GRPO: answers sampled per prompt (the group).")
    grpo_beta: float = Field(default=0.0, ge=0, description="GRPO: KL coefficient to the reference model.")
    grpo_epsilon: float = Field(default=0.2, gt=0, description="GRPO: clipping range of the policy ratio.")
    max_completion_length: int | None = Field(
        default=None, gt=0, description="PPO/GRPO: tokens generated per answer (default: max_new_tokens)."
    )
    # Misc
    pure_bf16: bool = False
    compute_accuracy: bool = False
    disable_shuffling: bool = False
    plot_loss: bool = False
    include_effective_tokens_per_second: bool = Field(
        default=False,
        description="Add LLaMA-Factory's effective_tokens_per_sec to the train metrics: the training rows' real "
        "(unpadded) tokens x epochs trained / train runtime. Not for ppo/grpo.",
    )
    use_llama_pro: bool = False
    use_galore: bool = False
    use_apollo: bool = False
    use_badam: bool = False
    use_adam_mini: bool = False
    use_muon: bool = False
    early_stopping_steps: int | None = Field(
        default=None,
        description="Stop training after this many evaluations in a row without improvement of "
        "metric_for_best_model (default eval loss); needs an eval split and eval_strategy steps or epoch. "
        "Not for ppo/grpo.",
    )

    _split = field_validator(
        "lora_target",
        "additional_target",
        "freeze_trainable_modules",
        "freeze_extra_modules",
        mode="before",
    )(split_csv)

    @field_validator("reward_funcs", mode="before")
    @classmethod
    def _reward_funcs(cls, value: Any) -> Any:
        value = split_csv(value)
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @property
    def effective_lora_alpha(self) -> int:
        return self.lora_alpha if self.lora_alpha is not None else self.lora_rank * 2


UNSUPPORTED_METHOD_OPTIONS: dict[str, object] = {
    "use_llama_pro": False,
    "use_galore": False,
    "use_apollo": False,
    "use_badam": False,
    "use_adam_mini": False,
    "use_muon": False,
    "pure_bf16": False,
    "pissa_convert": False,
}
