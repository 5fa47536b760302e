"""Continuous batching for the transformers engine: one running batch with one KV cache.

Approach (documented in docs/serving.md): every step decodes one token for all running sequences at
once. Sequences that arrive while a batch runs are prefilled together (left-padded) and merged into the
running batch between two steps: the shorter of the two caches is left-padded with masked zeros so both
have the same length, then they are concatenated along the batch. Finished sequences are removed at once
and columns that became padding for every row are cut, so the batch never waits for its slowest member.
Rotary position ids are counted per row from its attention mask, so padding never shifts a sequence.
Sequences of different adapters share a batch (PEFT's ``adapter_names``: one adapter per row).
A sequence that asks for its prompt's log-probs is prefilled alone, keeping the logits of every position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from tunery.serving.engines.sampling import prompt_logprobs, sample_next, token_logprobs
from tunery.serving.types import FinishReason, SamplingParams, TokenDelta, TokenLogprob

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass(eq=False)
class Sequence:
    """One choice being generated."""

    index: int
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None
    emit: Callable[[TokenDelta | BaseException], None]
    max_new_tokens: int
    generator: torch.Generator | None = None
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False
    finished: bool = False
    #: compute the prompt's log-probs at prefill (``params.prompt_logprobs``, first choice of a request only)
    score_prompt: bool = False
    #: the prompt's log-probs, until they leave with the first delta
    prompt_logprobs: list[TokenLogprob | None] | None = None


#: what a prefill or a step produced for one sequence: its new token and that token's log-prob when asked for
Produced = tuple[Sequence, int, TokenLogprob | None]


def left_pad(tensor: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """``tensor`` with ``size`` zeros added before its entries along ``dim``."""
    if size <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = size
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class Batch:
    """The running sequences with their KV cache (per layer [rows, heads, length, dim]) and mask [rows, length]."""

    def __init__(self, model: Any, uses_cache_kwarg: bool) -> None:
        self.model = model
        self.cache_kwarg = "cache" if uses_cache_kwarg else "past_key_values"
        self.sequences: list[Sequence] = []
        self.cache: Any = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)
        self.positions = torch.zeros(0, dtype=torch.long)  # next position id of each row
        self.last = torch.zeros(0, dtype=torch.long)  # last sampled token of each row

    def __len__(self) -> int:
        return len(self.sequences)

    # ----- model calls ------------------------------------------------------------------------------
    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        rows: list[Sequence],
        every_position: bool = False,
    ) -> torch.Tensor:
        """The logits of each row's last position ([rows, vocab], float32 on the CPU); with ``every_position``
        those of all positions ([rows, length, vocab], as the model gives them)."""
        kwargs: dict[str, Any] = {self.cache_kwarg: cache}
        if hasattr(self.model, "peft_config"):
            kwargs["adapter_names"] = [seq.adapter or BASE_ADAPTER for seq in rows]
        device = self.device
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            logits_to_keep=0 if every_position else 1,
            **kwargs,
        )
        if every_position:
            every: torch.Tensor = out.logits
            return every
        logits: torch.Tensor = out.logits[:, -1, :].float().cpu()
        return logits

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=getattr(self.model, "config", None))

    def admit(self, sequences: list[Sequence]) -> list[Produced]:
        """Prefill ``sequences`` and merge them into the batch; returns their first tokens. Those that score
        their prompt are prefilled one by one (all positions' logits), the others together."""
        scoring = [seq for seq in sequences if seq.score_prompt]
        groups = [[seq] for seq in scoring]
        rest = [seq for seq in sequences if not seq.score_prompt]
        if rest:
            groups.append(rest)
        return [item for group in groups for item in self._prefill(group)]

    def _prefill(self, sequences: list[Sequence]) -> list[Produced]:
        length = max(len(seq.prompt_ids) for seq in sequences)
        ids = torch.tensor([[0] * (length - len(s.prompt_ids)) + s.prompt_ids for s in sequences], dtype=torch.long)
        mask = torch.tensor([[0] * (length - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in sequences])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = self._new_cache()
        scoring = sequences[0].score_prompt  # then it is alone
        with torch.inference_mode():
            logits = self._forward(ids, mask, positions, cache, sequences, every_position=scoring)
            if scoring:
                seq = sequences[0]
                seq.prompt_logprobs = prompt_logprobs(logits[0], seq.prompt_ids, seq.params.logprobs or 0)
                logits = logits[:, -1, :].float().cpu()
        tokens = sample_next(logits, sequences)
        self._merge(sequences, cache, mask, tokens)
        return self._produced(sequences, logits, tokens)

    def step(self) -> list[Produced]:
        """One decoding step for every running sequence; returns each one's new token."""
        ids = self.last[:, None]
        mask = torch.cat([self.mask, torch.ones(len(self), 1, dtype=torch.long)], dim=1)
        with torch.inference_mode():
            logits = self._forward(ids, mask, self.positions[:, None], self.cache, self.sequences)
        self.mask = mask
        self.positions = self.positions + 1
        tokens = sample_next(logits, self.sequences)
        self.last = tokens
        return self._produced(self.sequences, logits, tokens)

    @staticmethod
    def _produced(sequences: list[Sequence], logits: torch.Tensor, tokens: torch.Tensor) -> list[Produced]:
        chosen = tokens.tolist()
        logprobs = token_logprobs(logits, chosen, [seq.params for seq in sequences])
        return list(zip(sequences, chosen, logprobs, strict=True))

    # ----- cache bookkeeping ------------------------------------------------------------------------
    def _layers(self, cache: Any) -> list[Any]:
        return list(cache.layers)

    def _merge(self, sequences: list[Sequence], cache: Any, mask: torch.Tensor, tokens: torch.Tensor) -> None:
        positions = mask.sum(-1)
        if not self.sequences:
            self.sequences, self.cache, self.mask = list(sequences), cache, mask
            self.positions, self.last = positions, tokens
            return
        old_len, new_len = self.mask.shape[1], mask.shape[1]
        for old, new in zip(self._layers(self.cache), self._layers(cache), strict=True):
            old_k, old_v = left_pad(old.keys, new_len - old_len, 2), left_pad(old.values, new_len - old_len, 2)
            new_k, new_v = left_pad(new.keys, old_len - new_len, 2), left_pad(new.values, old_len - new_len, 2)
            old.keys, old.values = torch.cat([old_k, new_k]), torch.cat([old_v, new_v])
        self.mask = torch.cat([left_pad(self.mask, new_len - old_len, 1), left_pad(mask, old_len - new_len, 1)])
        self.sequences += sequences
        self.positions = torch.cat([self.positions, positions])
        self.last = torch.cat([self.last, tokens])

    def remove(self, done: list[Sequence]) -> None:
        """Drop finished sequences and the columns that are now padding in every row."""
        if not done:
            return
        keep = [i for i, seq in enumerate(self.sequences) if seq not in done]
        if not keep:
            self.sequences, self.cache = [], None
            self.mask = torch.zeros(0, 0, dtype=torch.long)
            self.positions = self.last = torch.zeros(0, dtype=torch.long)
            return
        index = torch.tensor(keep, dtype=torch.long)
        self.mask = self.mask[index]
        start = int(self.mask.any(0).nonzero()[0].item())
        device_index = index.to(self.device)
        for layer in self._layers(self.cache):
            layer.keys = layer.keys.index_select(0, device_index)[:, :, start:]
            layer.values = layer.values.index_select(0, device_index)[:, :, start:]
        self.mask = self.mask[:, start:]
        self.sequences = [self.sequences[i] for i in keep]
        self.positions, self.last = self.positions[index], self.last[index]


def finish_reason(seq: Sequence, token: int, stop_ids: set[int], context: int) -> FinishReason | None:
    """Why ``seq`` ends after ``token`` (already appended), or None."""
    if token in stop_ids or token in seq.params.stop_token_ids:
        return "stop"
    if len(seq.generated) >= seq.max_new_tokens or len(seq.prompt_ids) + len(seq.generated) >= context:
        return "length"
    return None
