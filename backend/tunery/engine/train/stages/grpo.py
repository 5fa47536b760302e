"""GRPO (group relative policy optimisation) with TRL's ``GRPOTrainer``, on Tunery's prompt rows.

Prompts are the rows' ``prompt_ids``, rendered by our chat template: TRL would otherwise tokenize the prompt
text again (adding a second BOS with some tokenizers, splitting markers differently), so its prompt
tokenization is replaced by a lookup. Answers end at the template's stop words. Generation uses transformers:
TRL's ``use_vllm`` needs vLLM inside this environment, and Tunery keeps vLLM in its own (``.venv-vllm``).
``per_device_train_batch_size`` counts completions (TRL's meaning): each step samples
``per_device_train_batch_size x gradient_accumulation_steps / num_generations`` prompts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunery.engine.train.errors import TrainingError
from tunery.engine.train.rewards import RewardContext, build_reward_funcs
from tunery.engine.train.stages.base import StageInputs, register_stage
from tunery.engine.train.stages.generation import stop_token_ids
from tunery.engine.train.stages.preference import (
    TuneryTRLMixin,
    derive_config,
    drop_reference_adapter,
    eval_to_datasets,
    labelled_heads,
    rows_to_dataset,
)

if TYPE_CHECKING:
    from transformers import Trainer

    from tunery.engine.train.methods.base import OptimizerFactory
    from tunery.spec import JobSpec


def prompt_row(row: Any) -> dict[str, Any]:
    """A prompt row (contract: prompt_ids, prompt, reference) as TRL's dataset columns."""
    return {"prompt": row["prompt"], "prompt_ids": list(row["prompt_ids"]), "reference": row.get("reference")}


def grpo_values(spec: JobSpec) -> dict[str, Any]:
    """The GRPOConfig fields the spec sets (everything else is TrainingArguments or TRL's default)."""
    method, generation = spec.method, spec.generation
    return {
        "num_generations": method.num_generations,
        "beta": method.grpo_beta,
        "epsilon": method.grpo_epsilon,
        "max_completion_length": method.max_completion_length or generation.max_new_tokens,
        "temperature": generation.temperature,
        "top_p": generation.top_p,
        "top_k": generation.top_k,
        "repetition_penalty": generation.repetition_penalty,
        "reward_weights": [func.weight for func in method.reward_funcs],
        "shuffle_dataset": not method.disable_shuffling,
        "use_vllm": False,
        "log_completions": False,
        "include_num_input_tokens_seen": "no",  # GRPO counts prompt and completion tokens itself
    }


@register_stage("grpo")
def build_grpo(inputs: StageInputs) -> Trainer:
    spec, tokenizer = inputs.spec, inputs.tokenizer
    stop_words = list(getattr(inputs.template, "stop_words", None) or [])
    context = RewardContext(spec, tokenizer, stop_words)
    funcs, _ = build_reward_funcs(spec, context)
    train = rows_to_dataset(inputs.data.train_dataset, prompt_row, "train dataset")
    _check_references(spec, train["reference"])
    model: Any = inputs.prepared.model
    model.generation_config.eos_token_id = sorted(stop_token_ids(tokenizer, inputs.template))
    config = derive_config(inputs.args, _config_class(), **grpo_values(spec))
    trainer = TuneryGRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=config,
        train_dataset=train,
        eval_dataset=eval_to_datasets(inputs.data.eval_dataset, prompt_row),
        processing_class=tokenizer,
        callbacks=list(inputs.callbacks),
        optimizer_factory=inputs.prepared.optimizer_factory,
    )
    drop_reference_adapter(trainer.model)
    labelled_heads(trainer, ("log_probs", "entropy"), trainer.temperature)
    return trainer


def _check_references(spec: JobSpec, references: list[str | None]) -> None:
    """exact_match scores only rows with a reference answer: with none at all it would train on nothing."""
    if any(func.name == "exact_match" for func in spec.method.reward_funcs) and all(r is None for r in references):
        raise TrainingError(
            "invalid_data",
            "reward function exact_match compares answers with the dataset's reference answers, but no row of "
            f"{', '.join(spec.data.dataset or [])} has one (an answer column such as 'output' or the last "
            "assistant turn)",
        )


def _config_class() -> Any:
    from trl import GRPOConfig

    return GRPOConfig


def _trainer_class() -> Any:
    from trl import GRPOTrainer

    return GRPOTrainer


class TuneryGRPOTrainer(TuneryTRLMixin, _trainer_class()):  # type: ignore[misc]
    """TRL's GRPOTrainer generating from our token rows, and reporting Tunery's metric names too."""

    def __init__(self, *args: Any, optimizer_factory: OptimizerFactory | None = None, **kwargs: Any) -> None:
        self.optimizer_factory = optimizer_factory
        self._batch_prompt_ids: list[list[int]] = []
        super().__init__(*args, **kwargs)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._batch_prompt_ids = [list(row["prompt_ids"]) for row in inputs]
        return super()._generate_and_score_completions(inputs)  # type: ignore[no-any-return]

    def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], None, dict[str, Any]]:
        """The batch's own token ids (already rendered by our template), never a re-tokenized text."""
        if len(prompts) != len(self._batch_prompt_ids):
            raise RuntimeError(f"{len(prompts)} prompts for {len(self._batch_prompt_ids)} prompt_ids rows")
        return self._batch_prompt_ids, None, {}

    def _generate_single_turn(self, *args: Any, **kwargs: Any) -> Any:
        with self.accelerator.autocast():  # mixed precision: trained weights fp32, frozen ones bf16/fp16
            return super()._generate_single_turn(*args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for metrics in self._metrics.values():  # TRL averages these into the logs
            if "completions/mean_length" in metrics:
                metrics["completion_length"] = list(metrics["completions/mean_length"])
        super().log(logs, start_time)
