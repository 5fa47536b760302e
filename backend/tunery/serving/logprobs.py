"""Log-probs in OpenAI's shapes: chat's ``logprobs.content`` entries and the legacy completions object.

The numbers are the model's raw log-probs (log-softmax of its logits, before penalties, temperature, top-k
and top-p), as vLLM reports them by default; both engines compute them so (see ``TokenLogprob``). Token
texts are the tokens decoded one by one, as vLLM shows them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tunery.serving.types import TokenLogprob

#: what -inf becomes in JSON (OpenAI's and vLLM's value)
FLOOR = -9999.0
SENTENCEPIECE_SPACE = "\u2581"


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the character standing for each byte in byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars, strict=True)}


def _floor(value: float) -> float:
    return max(value, FLOOR)


@dataclass
class TokenTexts:
    """Each token's text and UTF-8 bytes, decoded alone (cached)."""

    tokenizer: Any
    _texts: dict[int, tuple[str, list[int]]] = field(default_factory=dict)

    def get(self, token: int) -> tuple[str, list[int]]:
        if token not in self._texts:
            self._texts[token] = self._decode(token)
        return self._texts[token]

    def text(self, token: int) -> str:
        return self.get(token)[0]

    def _decode(self, token: int) -> tuple[str, list[int]]:
        text: str = self.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        raw = self.tokenizer.convert_ids_to_tokens(token)
        raw = raw if isinstance(raw, str) else ""
        if raw.startswith(SENTENCEPIECE_SPACE) and not text.startswith(" "):
            text = " " + text  # SentencePiece drops a word's leading space when the token stands alone
        if "\ufffd" not in text:
            return text, list(text.encode("utf-8"))
        # part of a character: the token's own bytes (byte fallback <0xNN>, or byte-level BPE characters)
        if len(raw) == 6 and raw.startswith("<0x") and raw.endswith(">"):
            return text, [int(raw[3:5], 16)]
        decoder = _byte_decoder()
        if raw and all(char in decoder for char in raw):
            return text, [decoder[char] for char in raw]
        return text, list(text.encode("utf-8"))


_CACHES: weakref.WeakKeyDictionary[Any, TokenTexts] = weakref.WeakKeyDictionary()


def token_texts(tokenizer: Any) -> TokenTexts:
    """The token texts of ``tokenizer`` (one cache per tokenizer, kept while it lives)."""
    if tokenizer not in _CACHES:
        _CACHES[tokenizer] = TokenTexts(tokenizer)
    return _CACHES[tokenizer]


def chat_content(texts: TokenTexts, entries: Iterable[TokenLogprob], top: int) -> list[dict[str, Any]]:
    """Chat's ``logprobs.content``: one object per token with its ``top`` most likely alternatives."""
    out = []
    for entry in entries:
        text, raw = texts.get(entry.token_id)
        alternatives = []
        for token, value in entry.top[:top]:
            alt_text, alt_raw = texts.get(token)
            alternatives.append({"token": alt_text, "logprob": _floor(value), "bytes": alt_raw})
        out.append({"token": text, "logprob": _floor(entry.logprob), "bytes": raw, "top_logprobs": alternatives})
    return out


def chat_logprobs(texts: TokenTexts, entries: Iterable[TokenLogprob], top: int) -> dict[str, Any]:
    return {"content": chat_content(texts, entries, top), "refusal": None}


def completion_logprobs(
    texts: TokenTexts, entries: Sequence[TokenLogprob | None], tokens: Sequence[int], top: int, offset: int = 0
) -> dict[str, Any]:
    """The legacy completions object for ``tokens`` (``entries`` one per token, None for a prompt's first):
    ``top_logprobs`` holds the chosen token and the ``top`` most likely ones (so up to top + 1, as OpenAI),
    ``text_offset`` each token's position in the text, counted from ``offset``."""
    result: dict[str, Any] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for token, entry in zip(tokens, entries, strict=True):
        text = texts.text(token)
        result["tokens"].append(text)
        result["text_offset"].append(offset)
        offset += len(text)
        if entry is None:
            result["token_logprobs"].append(None)
            result["top_logprobs"].append(None)
            continue
        result["token_logprobs"].append(_floor(entry.logprob))
        alternatives = {text: _floor(entry.logprob)}
        for alternative, value in entry.top[:top]:
            alternatives.setdefault(texts.text(alternative), _floor(value))
        result["top_logprobs"].append(alternatives)
    return result


def text_length(texts: TokenTexts, tokens: Iterable[int]) -> int:
    """Characters the tokens take in ``text_offset`` counting."""
    return sum(len(texts.text(token)) for token in tokens)
