"""Preference losses TRL 1.16's DPOTrainer lacks, with LLaMA-Factory's definitions (train/dpo/trainer.py).

TRL keeps sigmoid, hinge and IPO; it dropped conservative DPO (``dpo_label_smoothing`` on the sigmoid loss),
moved ORPO and SimPO to experimental trainers with their own data path, and its "sft" term is a token mean over
the batch where LF's ``pref_ftx`` averages per sequence. These are those formulas, per pair of sequences; the
dpo stage uses them whenever TRL's own loss is not exactly the one asked for (also the plain losses then).

Inputs are per-sequence log-probabilities of the completions: ``*_sum`` summed over tokens, ``*_avg`` divided
by the completion length (LF averages for IPO, ORPO and SimPO).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: losses that compare the policy's chosen and rejected answers only: no reference model is loaded or run
REFERENCE_FREE = ("orpo", "simpo")


@dataclass(frozen=True)
class PreferenceLoss:
    """The spec's preference keys for stage dpo."""

    name: str = "sigmoid"  # sigmoid | hinge | ipo | orpo | simpo
    beta: float = 0.1
    ftx: float = 0.0
    label_smoothing: float = 0.0
    simpo_gamma: float = 0.5

    @property
    def reference_free(self) -> bool:
        return self.name in REFERENCE_FREE

    @property
    def computed_by_trl(self) -> bool:
        """TRL's own DPO loss gives exactly this (no smoothing, no SFT term, a loss it has)."""
        return self.name in ("sigmoid", "hinge", "ipo") and self.ftx == 0 and self.label_smoothing == 0


@dataclass
class PairLogps:
    """Per-sequence completion log-probs of the chosen and rejected halves of a batch."""

    chosen_sum: torch.Tensor
    rejected_sum: torch.Tensor
    chosen_len: torch.Tensor
    rejected_len: torch.Tensor

    @property
    def chosen_avg(self) -> torch.Tensor:
        return self.chosen_sum / self.chosen_len.clamp(min=1)

    @property
    def rejected_avg(self) -> torch.Tensor:
        return self.rejected_sum / self.rejected_len.clamp(min=1)


def preference_losses(loss: PreferenceLoss, policy: PairLogps, reference: PairLogps | None) -> torch.Tensor:
    """Per-pair loss (before the batch mean), SFT term included."""
    if loss.name == "orpo":
        losses = odds_ratio_loss(policy.chosen_avg, policy.rejected_avg, loss.beta)
    elif loss.name == "simpo":
        losses = simpo_loss(policy.chosen_avg, policy.rejected_avg, loss.beta, loss.simpo_gamma)
    else:
        if reference is None:
            raise ValueError(f"pref_loss {loss.name} needs reference log-probs")
        losses = reference_losses(loss, policy, reference)
    if loss.ftx > 0:
        losses = losses + loss.ftx * sft_loss(policy)
    return losses


def reference_losses(loss: PreferenceLoss, policy: PairLogps, reference: PairLogps) -> torch.Tensor:
    """sigmoid (conservative DPO with label smoothing), hinge, and IPO (length-averaged log-ratios)."""
    if loss.name == "ipo":
        delta = (policy.chosen_avg - reference.chosen_avg) - (policy.rejected_avg - reference.rejected_avg)
        return (delta - 1 / (2 * loss.beta)) ** 2
    delta = (policy.chosen_sum - reference.chosen_sum) - (policy.rejected_sum - reference.rejected_sum)
    logits = loss.beta * delta
    if loss.name == "hinge":
        return torch.relu(1 - logits)
    if loss.name == "sigmoid":
        smoothing = loss.label_smoothing
        return -F.logsigmoid(logits) * (1 - smoothing) - F.logsigmoid(-logits) * smoothing
    raise ValueError(f"unknown pref_loss {loss.name!r}")


def odds_ratio_loss(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, beta: float) -> torch.Tensor:
    """ORPO: NLL of the chosen answer + beta * -log sigmoid(log odds(chosen) - log odds(rejected))."""
    log_odds = (chosen_avg - rejected_avg) - (
        torch.log1p(-torch.exp(chosen_avg)) - torch.log1p(-torch.exp(rejected_avg))
    )
    return -chosen_avg - beta * F.logsigmoid(log_odds)


def simpo_loss(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """SimPO: -log sigmoid(beta * (avg logp chosen - avg logp rejected) - gamma)."""
    logits = (chosen_avg - rejected_avg) - gamma / beta
    return -F.logsigmoid(beta * logits)


def sft_loss(policy: PairLogps) -> torch.Tensor:
    """LF's ``pref_ftx`` term: the chosen answer's NLL averaged over its tokens, per sequence."""
    return -policy.chosen_avg


def pair_rewards(loss: PreferenceLoss, policy: PairLogps, reference: PairLogps | None) -> tuple[torch.Tensor, ...]:
    """(chosen, rejected) implicit rewards for the metrics: beta * log-ratio to the reference (summed over
    tokens, as TRL reports them), or beta * average log-prob for the reference-free losses (LF)."""
    if reference is None:
        return loss.beta * policy.chosen_avg.detach(), loss.beta * policy.rejected_avg.detach()
    chosen = loss.beta * (policy.chosen_sum - reference.chosen_sum).detach()
    rejected = loss.beta * (policy.rejected_sum - reference.rejected_sum).detach()
    return chosen, rejected
