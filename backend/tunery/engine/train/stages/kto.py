"""Stage kto: KTO on answers tagged desirable or undesirable, with TRL's ``KTOTrainer``.

Rows come tokenized from Tunery's pipeline (``prompt_ids``, ``completion_ids``, boolean ``label``).
``kto_chosen_weight`` / ``kto_rejected_weight`` are TRL's desirable/undesirable weights; ``pref_ftx`` adds LF's
SFT term on the desirable answers (TRL's KTO has none).

The KL term is estimated, as in LF, on mismatched pairs fixed once: each prompt with the previous row's
completion across the dataset. TRL instead pairs rows inside each batch, and so refuses batches of one and
shuffled sampling; with pairs across the dataset both are sound (LF's KTO example trains with batches of one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from trl import KTOConfig, KTOTrainer

from tunery.engine.train.errors import TrainingError
from tunery.engine.train.stages.base import StageInputs, register_stage
from tunery.engine.train.stages.preference import (
    Row,
    TuneryTRLMixin,
    drop_reference_adapter,
    eval_to_datasets,
    labelled_heads,
    rows_to_dataset,
    stage_reference,
    trl_config,
)

if TYPE_CHECKING:
    from datasets import Dataset  # type: ignore[import-untyped]
    from transformers import Trainer

    from tunery.engine.train.methods.base import OptimizerFactory

KTO_KEYS = ("prompt_ids", "completion_ids", "label")


def kto_row(row: Row) -> dict[str, Any]:
    missing = [key for key in KTO_KEYS if key not in row]
    if missing or not isinstance(row["label"], bool):
        raise TrainingError(
            "invalid_data",
            f"stage kto needs rows with {', '.join(KTO_KEYS)} (label a boolean: the kto_tag column); "
            f"the tokenized rows have {', '.join(sorted(row))}",
        )
    return {"prompt_ids": list(row["prompt_ids"]), "completion_ids": list(row["completion_ids"]), "label": row["label"]}


@register_stage("kto")
def build_kto(inputs: StageInputs) -> Trainer:
    method = inputs.spec.method
    args = trl_config(
        inputs,
        KTOConfig,
        beta=method.pref_beta,
        desirable_weight=method.kto_chosen_weight,
        undesirable_weight=method.kto_rejected_weight,
        loss_type="kto",
        max_length=None,  # rows are already cut to cutoff_len
        disable_dropout=True,  # LF's KTO trainer does the same
    )
    return TuneryKTOTrainer(
        model=inputs.prepared.model,
        ref_model=stage_reference(inputs, needed=True),
        args=args,
        train_dataset=rows_to_dataset(inputs.data.train_dataset, kto_row, "train dataset"),
        eval_dataset=eval_to_datasets(inputs.data.eval_dataset, kto_row),
        processing_class=inputs.tokenizer,
        callbacks=list(inputs.callbacks),
        optimizer_factory=inputs.prepared.optimizer_factory,
        ftx=method.pref_ftx,
    )


def with_kl_completions(dataset: Dataset) -> Dataset:
    """The KL rows: every prompt with the previous row's completion (the first with the last one's)."""
    completions = dataset["completion_ids"]
    return dataset.add_column("KL_completion_ids", [completions[-1], *completions[:-1]])


class TuneryKTOTrainer(TuneryTRLMixin, KTOTrainer):  # type: ignore[misc]
    """KTOTrainer on Tunery's token rows; the reference of a LoRA run is the adapter disabled."""

    def __init__(
        self, *args: Any, optimizer_factory: OptimizerFactory | None = None, ftx: float = 0.0, **kwargs: Any
    ) -> None:
        self.optimizer_factory = optimizer_factory
        self.ftx = ftx
        config = kwargs["args"]
        config.loss_type = "apo_zero_unpaired"  # skips TRL's in-batch pairing checks (see the module doc)
        try:
            super().__init__(*args, **kwargs)
        finally:
            config.loss_type = "kto"
        self.loss_type, self.calculate_KL = "kto", True
        drop_reference_adapter(self.model)
        labelled_heads(self, ("log_probs", "entropy", "mean_logits"))

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool) -> Any:
        if self.ftx <= 0:
            return super()._compute_loss(model, inputs, return_outputs)
        # TRL's loss keeps the policy's token log-probs to itself: a hook keeps the output of the policy's
        # forward on the batch (its first call on these input_ids; the KL rows and the reference come apart)
        kept: list[torch.Tensor] = []

        def keep(module: torch.nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            if not kept and kwargs.get("input_ids") is inputs["input_ids"]:
                kept.append(output.log_probs)

        handle = model.register_forward_hook(keep, with_kwargs=True)
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            handle.remove()
        term = self._sft_term(kept[0], inputs) if kept else None
        if term is None:
            return result
        if return_outputs:
            return result[0] + term, result[1]
        return result + term

    def _sft_term(self, log_probs: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor | None:
        """LF's KTO ``pref_ftx`` term: ftx x the desirable answers' mean per-token NLL, scaled by
        batch size / desirable count as LF does (train/kto/trainer.py)."""
        chosen = inputs["label"].bool()
        if not bool(chosen.any()):
            return None
        mask = inputs["completion_mask"][:, 1:]
        token_logps = log_probs[:, -mask.size(1) :] * mask
        average = token_logps.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        count = int(chosen.sum())
        term: torch.Tensor = self.ftx * (-average[chosen]).mean() / count * len(chosen)
        return term

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        return with_kl_completions(dataset)  # tokenized by Tunery's pipeline; KL rows added

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Also the reward margin when no single batch held both kinds of answers (e.g. eval batches of one):
        the mean desirable minus the mean undesirable reward, as LF logs it."""
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        if metrics.get("rewards/chosen") and metrics.get("rewards/rejected") and not metrics.get("rewards/margins"):
            chosen = sum(metrics["rewards/chosen"]) / len(metrics["rewards/chosen"])
            rejected = sum(metrics["rewards/rejected"]) / len(metrics["rewards/rejected"])
            metrics["rewards/margins"] = [chosen - rejected]
        super().log(logs, start_time)
