"""From generated token ids to text: incremental detokenization and stop strings.

Both engines hand back token ids; decoding happens here, once, so every engine produces the same text for
the same tokens. Control tokens (bos/eos/pad/unk and the template's stop words) are hidden; other special
tokens stay in the text because chat templates use them as markers (``<tool_call>``, ``<think>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def control_token_ids(tokenizer: Any, extra_words: Iterable[str] = ()) -> set[int]:
    """Ids of tokens that never appear in output text: bos/eos/pad/unk and single-token stop words."""
    ids: set[int] = set()
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            ids.add(value)
    ids.update(single_token_ids(tokenizer, extra_words))
    return ids


def single_token_ids(tokenizer: Any, words: Iterable[str]) -> set[int]:
    """Ids of the words that are one token of the vocabulary (e.g. ``<|eot_id|>``)."""
    vocab = tokenizer.get_vocab()
    return {vocab[word] for word in words if word and word in vocab}


@dataclass
class Detokenizer:
    """Turns a growing list of token ids into text deltas without splitting multi-byte characters.

    Keeps a small window of earlier tokens so that tokenizers whose pieces depend on the neighbour
    (leading spaces, byte fallback) decode the same as decoding the whole sequence.
    """

    tokenizer: Any
    hidden: set[int] = field(default_factory=set)
    ids: list[int] = field(default_factory=list)
    prefix_offset: int = 0
    read_offset: int = 0

    def _decode(self, ids: list[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return text

    def add(self, token_ids: Iterable[int]) -> str:
        """The new text once ``token_ids`` are appended ('' while a character is incomplete)."""
        self.ids.extend(t for t in token_ids if t not in self.hidden)
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        full = self._decode(self.ids[self.prefix_offset :])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return full[len(prefix) :]
        return ""

    def flush(self) -> str:
        """Whatever is left at the end (an incomplete character decodes as the replacement character)."""
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        full = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.ids)
        return full[len(prefix) :] if len(full) > len(prefix) else ""


def partial_suffix(text: str, word: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``word``."""
    for size in range(min(len(word) - 1, len(text)), 0, -1):
        if word.startswith(text[-size:]):
            return size
    return 0


@dataclass
class StopChecker:
    """Cuts the text at the first stop string and holds back an end that may become one.

    ``feed`` returns (text safe to emit now, stopped). ``finish`` returns what was held back.
    """

    stops: tuple[str, ...]
    text: str = ""  # everything emitted so far
    held: str = ""
    stopped: bool = False

    def feed(self, delta: str) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        pending = self.held + delta
        cut = min((i for i in (pending.find(s) for s in self.stops if s) if i >= 0), default=-1)
        # held-back text plus the new text: a stop string split across deltas is found here
        if cut >= 0:
            out = pending[:cut]
            self.text += out
            self.held, self.stopped = "", True
            return out, True
        keep = max((partial_suffix(pending, s) for s in self.stops if s), default=0)
        out = pending[: len(pending) - keep] if keep else pending
        self.held = pending[len(pending) - keep :] if keep else ""
        self.text += out
        return out, False

    def finish(self) -> str:
        out, self.held = ("" if self.stopped else self.held), ""
        self.text += out
        return out
