"""Choosing the next token for each row of a batch with its own sampling settings, and the log-probs
requests ask for (of the model's raw distribution: before penalties, temperature, top-k and top-p, as
vLLM's default ``raw_logprobs``)."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import TYPE_CHECKING

import torch

from tunery.serving.types import SamplingParams, TokenLogprob

if TYPE_CHECKING:
    from tunery.serving.engines.hf_batch import Sequence

#: log-probs of positions scored together when a prompt's log-probs are computed (bounds the memory used)
PROMPT_CHUNK = 512


def apply_penalties(logits: torch.Tensor, generated: list[int], presence: float, frequency: float) -> torch.Tensor:
    """OpenAI's presence/frequency penalties over the tokens generated so far (one row)."""
    if not generated or (presence == 0 and frequency == 0):
        return logits
    counts = torch.bincount(torch.tensor(generated), minlength=logits.shape[-1])[: logits.shape[-1]].to(logits)
    return logits - frequency * counts - presence * (counts > 0).to(logits)


def apply_repetition_penalty(logits: torch.Tensor, seen: list[int], penalty: float) -> torch.Tensor:
    """The CTRL repetition penalty as transformers and vLLM apply it: the logit of every token of the prompt
    and the answer so far is divided by ``penalty`` when positive, multiplied by it when negative."""
    if penalty == 1.0 or not seen:
        return logits
    ids = torch.tensor(sorted(set(seen)), dtype=torch.long)
    ids = ids[ids < logits.shape[-1]]
    values = logits[ids]
    penalized = logits.clone()
    penalized[ids] = torch.where(values > 0, values / penalty, values * penalty)
    return penalized


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the ``top_k`` most likely tokens (0: all)."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    threshold = torch.topk(logits, top_k).values[-1]
    return logits.masked_fill(logits < threshold, float("-inf"))


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
    """One token per row: argmax for greedy rows, else sampling with the row's generator after the
    penalties (repetition, presence, frequency), temperature, top-k and top-p, in vLLM's order."""
    tokens = torch.argmax(logits, dim=-1)
    for row, seq in enumerate(sequences):
        params = seq.params
        if params.greedy and not params.penalized:
            continue
        scores = apply_repetition_penalty(logits[row], seq.prompt_ids + seq.generated, params.repetition_penalty)
        scores = apply_penalties(scores, seq.generated, params.presence_penalty, params.frequency_penalty)
        if params.greedy:
            tokens[row] = int(torch.argmax(scores).item())
            continue
        scores = top_p_filter(top_k_filter(scores / params.temperature, params.top_k), params.top_p)
        tokens[row] = int(torch.multinomial(scores.softmax(-1), 1, generator=seq.generator).item())
    return tokens


def _rows(logprobs: torch.Tensor, tokens: list[int], top: int) -> list[TokenLogprob]:
    """The entries of ``tokens`` in log-prob rows ([len(tokens), vocab]) with their ``top`` best alternatives."""
    chosen = logprobs.gather(1, torch.tensor(tokens, dtype=torch.long)[:, None])[:, 0].tolist()
    if top <= 0:
        return [TokenLogprob(token, value) for token, value in zip(tokens, chosen, strict=True)]
    values, ids = torch.topk(logprobs, min(top, logprobs.shape[-1]), dim=-1)
    return [
        TokenLogprob(token, value, tuple(zip(row_ids, row_values, strict=True)))
        for token, value, row_ids, row_values in zip(tokens, chosen, ids.tolist(), values.tolist(), strict=True)
    ]


def token_logprobs(logits: torch.Tensor, tokens: Seq[int], params: Seq[SamplingParams]) -> list[TokenLogprob | None]:
    """Each row's chosen token under the raw distribution of its logits (None for rows that asked for none)."""
    out: list[TokenLogprob | None] = [None] * len(params)
    for row, p in enumerate(params):
        if p.logprobs is not None:
            (out[row],) = _rows(logits[row : row + 1].float().log_softmax(-1), [tokens[row]], p.logprobs)
    return out


def prompt_logprobs(logits: torch.Tensor, prompt: list[int], top: int) -> list[TokenLogprob | None]:
    """Log-probs of a prompt's tokens from the logits of its positions ([len(prompt), vocab]): token i is
    scored by position i - 1, the first token has none."""
    out: list[TokenLogprob | None] = [None]
    for start in range(0, len(prompt) - 1, PROMPT_CHUNK):
        end = min(start + PROMPT_CHUNK, len(prompt) - 1)
        chunk = logits[start:end].float().log_softmax(-1).cpu()
        out.extend(_rows(chunk, prompt[start + 1 : end + 1], top))
    return out
