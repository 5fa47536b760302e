"""Stage rm: a pairwise reward model, trained with TRL's ``RewardTrainer``.

The runner loads the base as ``AutoModelForSequenceClassification`` with one output (its new ``score`` head is
LF's value head; LoRA saves it with the adapter, freeze trains it too). The loss is LF's PairwiseTrainer's
``-log sigmoid(r_chosen - r_rejected)``, each reward read at the sequence's last token; evaluation reports the
pairwise accuracy (``eval_accuracy``). The saved folder is described in ``tunery.engine.train.reward_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from trl import RewardConfig, RewardTrainer

from tunery.engine.train.stages.base import StageInputs, register_stage
from tunery.engine.train.stages.dpo import pair_row
from tunery.engine.train.stages.preference import Row, TuneryTRLMixin, eval_to_datasets, rows_to_dataset, trl_config

if TYPE_CHECKING:
    from transformers import Trainer

    from tunery.engine.train.methods.base import OptimizerFactory


def scored_pair(row: Row) -> dict[str, list[int]]:
    """Both answers as whole sequences (prompt + answer), which is what the reward model reads."""
    pair = pair_row(row)
    return {
        "chosen_ids": pair["prompt_ids"] + pair["chosen_ids"],
        "rejected_ids": pair["prompt_ids"] + pair["rejected_ids"],
    }


@register_stage("rm", model_kind="reward")
def build_rm(inputs: StageInputs) -> Trainer:
    args = trl_config(
        inputs,
        RewardConfig,
        max_length=None,  # rows are already cut to cutoff_len
        disable_dropout=False,  # LF's reward trainer keeps the model's dropout (lora_dropout too)
    )
    return TuneryRewardTrainer(
        model=inputs.prepared.model,
        args=args,
        train_dataset=rows_to_dataset(inputs.data.train_dataset, scored_pair, "train dataset"),
        eval_dataset=eval_to_datasets(inputs.data.eval_dataset, scored_pair),
        processing_class=inputs.tokenizer,
        callbacks=list(inputs.callbacks),
        optimizer_factory=inputs.prepared.optimizer_factory,
    )


class TuneryRewardTrainer(TuneryTRLMixin, RewardTrainer):  # type: ignore[misc]
    """RewardTrainer on Tunery's rows, also logging the mean chosen/rejected rewards (the stage's metrics)."""

    def __init__(self, *args: Any, optimizer_factory: OptimizerFactory | None = None, **kwargs: Any) -> None:
        self.optimizer_factory = optimizer_factory
        super().__init__(*args, **kwargs)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        with torch.no_grad():
            chosen, rejected = outputs.logits.squeeze(-1).detach().chunk(2)
            metrics = self._metrics["train" if self.model.training else "eval"]
            gather = self.accelerator.gather_for_metrics
            metrics["rewards/chosen"].append(gather(chosen).mean().item())
            metrics["rewards/rejected"].append(gather(rejected).mean().item())
            metrics["rewards/margins"].append(gather(chosen - rejected).mean().item())
        return (loss, outputs) if return_outputs else loss
