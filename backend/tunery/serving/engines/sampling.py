"""Choosing the next token for each row of a batch with its own sampling settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tunery.serving.engines.hf_batch import Sequence


def apply_penalties(logits: torch.Tensor, generated: list[int], presence: float, frequency: float) -> torch.Tensor:
    """OpenAI's presence/frequency penalties over the tokens generated so far (one row)."""
    if not generated or (presence == 0 and frequency == 0):
        return logits
    counts = torch.bincount(torch.tensor(generated), minlength=logits.shape[-1])[: logits.shape[-1]].to(logits)
    return logits - frequency * counts - presence * (counts > 0).to(logits)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (the top token always stays)."""
    if top_p >= 1.0:
        return logits
    ordered, order = torch.sort(logits, descending=True)
    cumulative = ordered.softmax(-1).cumsum(-1)
    remove = cumulative - ordered.softmax(-1) >= top_p
    remove[..., 0] = False
    filtered = logits.clone()
    filtered[order[remove]] = float("-inf")
    return filtered


def sample_next(logits: torch.Tensor, sequences: list[Sequence]) -> torch.Tensor:
    """One token per row: argmax for greedy rows, else temperature + top-p sampling with the row's generator."""
    tokens = torch.argmax(logits, dim=-1)
    for row, seq in enumerate(sequences):
        params = seq.params
        penalized = params.presence_penalty != 0 or params.frequency_penalty != 0
        if params.greedy and not penalized:
            continue
        scores = apply_penalties(logits[row], seq.generated, params.presence_penalty, params.frequency_penalty)
        if params.greedy:
            tokens[row] = int(torch.argmax(scores).item())
            continue
        scores = top_p_filter(scores / params.temperature, params.top_p)
        tokens[row] = int(torch.multinomial(scores.softmax(-1), 1, generator=seq.generator).item())
    return tokens
