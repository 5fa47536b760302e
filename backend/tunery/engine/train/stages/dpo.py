"""Stage dpo: DPO and its family (IPO, hinge, ORPO, SimPO) on preference pairs, with TRL's ``DPOTrainer``.

TRL takes Tunery's tokenized pairs as they are (``prompt_ids``/``chosen_ids``/``rejected_ids``, fed to its
``DataCollatorForPreference``), disables a LoRA adapter for the reference and logs rewards/*, logps/* and
logits/*; log-probs are computed at labelled positions only (``labelled_head``). sigmoid, hinge and IPO are
TRL's own losses; ORPO, SimPO, conservative DPO and LF's ``pref_ftx`` term are added here (``pref_losses``):
TRL keeps ORPO/SimPO only in experimental trainers with another, text-based data path, and has no
label-smoothed sigmoid.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from trl import DPOConfig, DPOTrainer

from tunery.engine.train.errors import TrainingError
from tunery.engine.train.stages.base import StageInputs, register_stage
from tunery.engine.train.stages.pref_losses import PairLogps, PreferenceLoss, pair_rewards, preference_losses
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
    from transformers import Trainer

    from tunery.engine.train.methods.base import OptimizerFactory
    from tunery.spec import JobSpec

PAIR_KEYS = ("prompt_ids", "chosen_ids", "rejected_ids")


def preference_loss(spec: JobSpec) -> PreferenceLoss:
    method = spec.method
    return PreferenceLoss(
        name=method.pref_loss,
        beta=method.pref_beta,
        ftx=method.pref_ftx,
        label_smoothing=method.dpo_label_smoothing,
        simpo_gamma=method.simpo_gamma,
    )


def pair_row(row: Row) -> dict[str, list[int]]:
    """A contract row (prompt, chosen and rejected token ids; completions end with their end token)."""
    missing = [key for key in PAIR_KEYS if key not in row]
    if missing:
        raise TrainingError(
            "invalid_data",
            f"preference stages need rows with {', '.join(PAIR_KEYS)} (a dataset with ranking: true); "
            f"the tokenized rows have {', '.join(sorted(row))}",
        )
    return {key: list(row[key]) for key in PAIR_KEYS}


@register_stage("dpo")
def build_dpo(inputs: StageInputs) -> Trainer:
    loss = preference_loss(inputs.spec)
    args = trl_config(
        inputs,
        DPOConfig,
        beta=loss.beta,
        loss_type=[loss.name if loss.computed_by_trl else "sigmoid"],
        max_length=None,  # rows are already cut to cutoff_len, prompt and answers sharing the budget (LF)
        disable_dropout=True,  # LF's DPO trainer does the same
    )
    train = rows_to_dataset(inputs.data.train_dataset, pair_row, "train dataset")
    evaluation = eval_to_datasets(inputs.data.eval_dataset, pair_row)
    reference = stage_reference(inputs, needed=not loss.reference_free)
    with _no_reference_copy(loss.reference_free):
        return TuneryDPOTrainer(
            model=inputs.prepared.model,
            ref_model=reference,
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=inputs.tokenizer,
            callbacks=list(inputs.callbacks),
            loss=loss,
            optimizer_factory=inputs.prepared.optimizer_factory,
        )


@contextlib.contextmanager
def _no_reference_copy(reference_free: bool) -> Iterator[None]:
    """ORPO/SimPO need no reference, but DPOTrainer loads a copy of a non-PEFT model whenever none is given;
    its loader is swapped for one that loads nothing while the trainer is built."""
    if not reference_free:
        yield
        return
    import trl.trainer.dpo_trainer as module

    original = module.create_model_from_path
    module.create_model_from_path = _load_nothing  # type: ignore[assignment]
    try:
        yield
    finally:
        module.create_model_from_path = original


def _load_nothing(*args: Any, **kwargs: Any) -> None:
    return None


class TuneryDPOTrainer(TuneryTRLMixin, DPOTrainer):  # type: ignore[misc]
    """DPOTrainer on Tunery's token rows, with LF's extra preference losses."""

    def __init__(
        self, *args: Any, loss: PreferenceLoss, optimizer_factory: OptimizerFactory | None = None, **kwargs: Any
    ) -> None:
        self.preference = loss
        self.optimizer_factory = optimizer_factory
        super().__init__(*args, **kwargs)
        drop_reference_adapter(self.model)
        weighting = ("log_sum_sq_probs",) if self.use_weighting else ()
        labelled_heads(self, ("log_probs", "entropy", "mean_logits", "is_top1", *weighting))  # TRL's list

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        return dataset  # tokenized by Tunery's pipeline: prompt_ids, chosen_ids, rejected_ids

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool) -> Any:
        if self.preference.computed_by_trl:
            return super()._compute_loss(model, inputs, return_outputs)
        mode = "train" if self.model.training else "eval"
        model_kwargs = {key: inputs[key] for key in ("input_ids", "attention_mask")}
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, use_cache=False, labels=labels, fused_lm_head=True)
        mask = completion_mask[:, 1:]
        token_logps = outputs.log_probs[:, -mask.size(1) :] * mask
        policy = _split_pairs(token_logps.sum(dim=1), mask.sum(dim=1))
        reference = None
        if not self.preference.reference_free:
            ref_model = self.ref_model if self.ref_model is not None else self.model  # LoRA: adapter disabled
            ref_chosen, ref_rejected = self.compute_ref_log_probs(ref_model, inputs)
            reference = PairLogps(ref_chosen, ref_rejected, policy.chosen_len, policy.rejected_len)
        loss = preference_losses(self.preference, policy, reference).mean()
        if self.aux_loss_enabled and getattr(outputs, "aux_loss", None) is not None:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss
        self._log_pair_metrics(mode, policy, reference, outputs, mask)
        if return_outputs:
            with torch.no_grad():
                return loss, model(**model_kwargs)
        return loss

    def _log_pair_metrics(
        self, mode: str, policy: PairLogps, reference: PairLogps | None, outputs: Any, mask: torch.Tensor
    ) -> None:
        """The metrics TRL logs for its own losses (rewards/*, logps/*, logits/*), same names."""
        chosen, rejected = pair_rewards(self.preference, policy, reference)
        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen).mean().item())
        metrics["rewards/rejected"].append(gather(rejected).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen > rejected).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen - rejected).mean().item())
        metrics["logps/chosen"].append(gather(policy.chosen_sum.detach()).mean().item())
        metrics["logps/rejected"].append(gather(policy.rejected_sum.detach()).mean().item())
        mean_logits = getattr(outputs, "mean_logits", None)
        if mean_logits is not None:
            chosen_logits, rejected_logits = mean_logits[:, -mask.size(1) :].detach().chunk(2, dim=0)
            chosen_mask, rejected_mask = mask.bool().chunk(2, dim=0)
            halves = (("chosen", chosen_logits, chosen_mask), ("rejected", rejected_logits, rejected_mask))
            for name, values, where in halves:
                if where.any():
                    metrics[f"logits/{name}"].append(gather(values[where].mean()).mean().item())
        if self.preference.name == "orpo":  # LF reports ORPO's two parts
            metrics["sft_loss"].append(gather(-policy.chosen_avg.detach()).mean().item())


def _split_pairs(sums: torch.Tensor, lengths: torch.Tensor) -> PairLogps:
    """The collator stacks every chosen sequence of the batch, then every rejected one."""
    chosen_sum, rejected_sum = sums.chunk(2, dim=0)
    chosen_len, rejected_len = lengths.chunk(2, dim=0)
    return PairLogps(chosen_sum, rejected_sum, chosen_len, rejected_len)
