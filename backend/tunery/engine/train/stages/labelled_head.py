"""Per-token log-probabilities for TRL's preference trainers, computed at labelled positions only.

TRL's trainers call ``model(..., labels=labels, fused_lm_head=True)`` and read per-token ``log_probs`` (plus
``entropy``, ``mean_logits``, ``is_top1`` for their metrics). Its fused head projects in tiles and recomputes
the projection in backward, which pays off for large vocabularies on a GPU; in eager mode on a CPU it costs
several times a plain projection. Here the model's own forward runs with its output head given only the
hidden states whose next token is labelled (``loss.LabelledHead``, as SFT does), so whatever the model applies
to logits (soft-capping, scaling) still applies, and autograd differentiates one small projection. A padding
mask that cannot change a labelled position (right padding, causal attention) is dropped, as SFT does.
Mixture-of-experts models keep TRL's path (their router loss needs its bookkeeping).
"""

from __future__ import annotations

import types
from typing import Any

import torch

from tunery.engine.train.stages.loss import LabelledHead, next_token_targets, without_padding_mask

ALL_OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1", "log_sum_sq_probs")


def use_labelled_head(model: Any, temperature: float = 1.0, outputs: tuple[str, ...] = ALL_OUTPUTS) -> None:
    """Route ``fused_lm_head=True`` calls of ``model`` (a base model TRL has patched) through the labelled
    head, logits divided by ``temperature`` as TRL's head does, computing the per-token ``outputs`` the
    trainer reads (the others are None, as with TRL's head); other calls, generation included, go to the
    forward TRL kept."""
    config = getattr(model, "config", None)
    if config is None or getattr(config.get_text_config(), "output_router_logits", False):
        return
    trl_forward = model.forward

    def forward(self: Any, *args: Any, fused_lm_head: bool = False, labels: Any = None, **kwargs: Any) -> Any:
        if not fused_lm_head or kwargs.get("shift_labels") is not None:
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels, **kwargs)
        kwargs.pop("num_items_in_batch", None)
        return labelled_log_probs(self, trl_forward, labels, temperature, outputs, *args, **kwargs)

    model.forward = types.MethodType(forward, model)


def labelled_log_probs(
    model: Any,
    plain_forward: Any,
    labels: torch.Tensor,
    temperature: float,
    wanted: tuple[str, ...],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """TRL's ``FusedCausalLMOutput`` for ``labels`` (``[batch, seq]``, -100 where not scored)."""
    from trl.trainer.utils import FusedCausalLMOutput

    kwargs = {**without_padding_mask(kwargs), "use_cache": False}  # right padding: SDPA's causal fast path
    head = model.get_output_embeddings()
    mask, targets = next_token_targets(labels)
    with LabelledHead(head, mask) as selection:
        outputs = plain_forward(*args, **kwargs)
    logits = (outputs.logits[0] if selection.selected else outputs.logits[mask]).float() / temperature
    log_softmax = torch.log_softmax(logits, dim=-1)
    token_logps = log_softmax.gather(1, targets.unsqueeze(1)).squeeze(1)
    shifted = mask[:, :-1]

    def spread(values: torch.Tensor) -> torch.Tensor:
        return values.new_zeros(shifted.shape).masked_scatter(shifted, values)

    extras: dict[str, torch.Tensor | None] = dict.fromkeys(ALL_OUTPUTS[1:])
    with torch.no_grad():
        if "entropy" in wanted:
            extras["entropy"] = spread(-(log_softmax.exp() * log_softmax).sum(-1))
        if "mean_logits" in wanted:
            extras["mean_logits"] = spread(logits.mean(-1))
        if "is_top1" in wanted:
            extras["is_top1"] = spread(logits.argmax(-1) == targets)
        if "log_sum_sq_probs" in wanted:
            extras["log_sum_sq_probs"] = spread(torch.logsumexp(2 * log_softmax, dim=-1))
    return FusedCausalLMOutput(
        loss=-token_logps.sum() / shifted.sum().clamp(min=1),
        log_probs=spread(token_logps),
        label_mask=shifted,
        **extras,
    )
