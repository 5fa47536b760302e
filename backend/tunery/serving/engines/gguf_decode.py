"""The gguf engine's decode loop on a llama.cpp context: token ids in (``llama_decode``), logits out, and the
next token chosen from them in numpy the way the hf engine chooses it (sampling.py: penalties, temperature,
top-k, top-p in vLLM's order; raw log-probs). llama.cpp's own samplers are not used: their order and
penalty window differ, and they expose no raw log-probs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tunery.serving.types import EngineError, SamplingParams, TokenLogprob

Logits = npt.NDArray[np.float32]


class Decoder:
    """One sequence in the KV cache of a llama.cpp context: the tokens decoded so far are kept, so a prompt
    that starts the same way (the next choice, the next chat turn) decodes only what differs."""

    def __init__(self, llama: Any) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.ctx = llama.ctx
        self.n_batch = int(llama.n_batch)
        self.vocab = int(llama.n_vocab())
        self.cached: list[int] = []
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        self.cached = []

    def _keep(self, keep: int) -> None:
        """Drop cached tokens from ``keep`` on (everything when the model cannot cut its cache, e.g. recurrent)."""
        if keep >= len(self.cached):
            return
        if not self.lib.llama_memory_seq_rm(self.lib.llama_get_memory(self.ctx), -1, keep, -1):
            self.clear()
            return
        del self.cached[keep:]

    def _decode(self, tokens: Sequence[int], all_logits: bool) -> list[Logits]:
        """Decode ``tokens`` after the cached ones; the logits of every position (``all_logits``) or the last."""
        rows: list[Logits] = []
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            last = start + len(chunk) == len(tokens)
            batch = self.batch
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                if not 0 <= token < self.vocab:
                    raise EngineError(f"token id {token} is outside the model's vocabulary of {self.vocab}")
                batch.token[i] = token
                batch.pos[i] = len(self.cached) + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = all_logits or (last and i == len(chunk) - 1)
            code = self.lib.llama_decode(self.ctx, batch)
            if code != 0:
                self.clear()
                raise EngineError(f"llama.cpp could not decode {len(chunk)} tokens (llama_decode returned {code})")
            self.cached.extend(chunk)
            wanted = range(len(chunk)) if all_logits else [len(chunk) - 1] if last else []
            rows.extend(self._logits(i) for i in wanted)
        return rows

    def _logits(self, index: int) -> Logits:
        pointer = self.lib.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.vocab,)).copy()

    def prefill(self, prompt: list[int], score: bool, top: int) -> tuple[Logits, list[TokenLogprob | None] | None]:
        """The logits after ``prompt``, and its tokens' log-probs when ``score`` (then it decodes from scratch:
        cached positions have no logits left)."""
        keep = 0
        if not score:
            while keep < min(len(self.cached), len(prompt)) and self.cached[keep] == prompt[keep]:
                keep += 1
            keep = min(keep, len(prompt) - 1)  # the last prompt token is decoded again for its logits
        self._keep(keep)
        rows = self._decode(prompt[len(self.cached) :], all_logits=score)
        if not score:
            return rows[-1], None
        scored: list[TokenLogprob | None] = [None]
        for position, row in enumerate(rows[:-1]):
            scored.append(logprob_entry(row, prompt[position + 1], top))
        return rows[-1], scored

    def step(self, token: int) -> Logits:
        return self._decode([token], all_logits=False)[-1]


def log_softmax(logits: Logits) -> npt.NDArray[np.float64]:
    values = logits.astype(np.float64)
    shifted = values - values.max()
    result: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum())
    return result


def logprob_entry(logits: Logits, token: int, top: int) -> TokenLogprob:
    """``token`` under the raw distribution of ``logits`` with the ``top`` most likely tokens."""
    logprobs = log_softmax(logits)
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        ids = np.argpartition(-logprobs, min(top, logprobs.size) - 1)[:top]
        ids = ids[np.argsort(-logprobs[ids], kind="stable")]
        best = tuple((int(i), float(logprobs[i])) for i in ids)
    return TokenLogprob(token, float(logprobs[token]), best)


def _penalized(logits: Logits, params: SamplingParams, prompt: list[int], generated: list[int]) -> Logits:
    scores = logits.copy()
    if params.repetition_penalty != 1.0:  # CTRL's, over the prompt and the answer (as transformers and vLLM)
        seen = np.unique(np.asarray(prompt + generated, dtype=np.int64))
        seen = seen[seen < scores.size]
        values = scores[seen]
        scores[seen] = np.where(values > 0, values / params.repetition_penalty, values * params.repetition_penalty)
    if generated and (params.presence_penalty or params.frequency_penalty):  # OpenAI's, over the answer
        counts = np.bincount(np.asarray(generated, dtype=np.int64), minlength=scores.size)[: scores.size]
        scores = scores - params.frequency_penalty * counts - params.presence_penalty * (counts > 0)
    return scores.astype(np.float32)


def choose(
    logits: Logits, params: SamplingParams, prompt: list[int], generated: list[int], rng: np.random.Generator
) -> int:
    """The next token: argmax when greedy, else sampled after penalties, temperature, top-k and top-p."""
    scores = _penalized(logits, params, prompt, generated) if params.penalized else logits
    if params.greedy:
        return int(np.argmax(scores))
    scaled = scores.astype(np.float64) / params.temperature
    if 0 < params.top_k < scaled.size:
        threshold = np.partition(scaled, -params.top_k)[-params.top_k]
        scaled = np.where(scaled < threshold, -np.inf, scaled)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        ordered = probs[order]
        remove = np.cumsum(ordered) - ordered >= params.top_p
        remove[0] = False
        probs[order[remove]] = 0.0
        probs /= probs.sum()
    return int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right").clip(0, probs.size - 1))
