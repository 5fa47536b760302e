"""Byte-level BPE with a word cache: the same ids as the Rust tokenizer, in about half the time.

The Rust pipeline spends most of its time pre-tokenizing (regex split + byte mapping with per-character
alignments), not in BPE: a dataset of 1.8 M characters has ~370 k words but only ~18 k distinct ones. Here
special tokens are split out and words found by one regex call per text, each distinct word goes once
through the tokenizer's own BPE model, and a text's ids are the concatenation of its words' cached ids.

Used only where it is the same computation: a byte-level BPE tokenizer (GPT-2 style, or a ``Split``
regex + byte-level, as Llama 3 and Qwen 2) without options that change splitting, and only for ASCII
texts, where Unicode classes and normalizers cannot differ between regex engines (Python's ``re`` here,
Oniguruma in the tokenizer). Other texts go to the tokenizer as before. A probe text is encoded both ways
when the encoder is built; any difference disables it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

#: Distinct words kept before the cache starts over, so memory stays flat however many rows are encoded.
MAX_CACHED_WORDS = 50_000
#: The pattern of ``pre_tokenizers.ByteLevel(use_regex=True)`` (GPT-2's).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
#: Normalizers that leave ASCII text unchanged.
_ASCII_IDENTITY_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD"}
_PROBE = (
    "Hello, world! It's 12345 o'clock; they'll say:\n\n  indented\tTABS\r\n{\"key\": [1, 2.5e-3]}  \n"
    "x_y-z  ~`!@#$%^&*()+=|\\<>?/ 'S 'LL\x0b\x0c\x1c\x7f END"
)


@lru_cache(maxsize=1)
def _byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character table (the byte-level pre-tokenizer's alphabet), ASCII part."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return {byte: char for byte, char in table.items() if byte < 128}


class WordCacheEncoder:
    """Encodes texts like ``backend.encode_batch_fast(texts, add_special_tokens=False)`` (see module doc)."""

    def __init__(self, backend: Any, words: re.Pattern[str], added: list[tuple[str, int, bool]]) -> None:
        self._backend = backend
        self._model = backend.model
        self._words = words
        self._added = {content: token_id for content, token_id, _ in added}
        # like the Rust added vocabulary: tokens matched on the raw text first, then the normalized ones;
        # leftmost-longest matching = an alternation tried longest first
        self._stages: list[re.Pattern[str]] = []
        for normalized in (False, True):
            contents = sorted((c for c, _, norm in added if norm == normalized), key=len, reverse=True)
            if contents:
                self._stages.append(re.compile("(" + "|".join(map(re.escape, contents)) + ")"))
        self._bytes = _byte_chars()
        self._number: dict[str, int] = {}  # word -> index in _pieces
        self._pieces: list[tuple[int, ...]] = []  # ids of each cached word

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> WordCacheEncoder | None:
        """The encoder for ``tokenizer``, or None when its pipeline is not one this class reproduces."""
        if not getattr(tokenizer, "is_fast", False):
            return None
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        try:
            pattern = _supported_pattern(backend)
            added = _added_tokens(backend)
        except (AttributeError, TypeError, ValueError, KeyError):
            return None
        words = _compile_words(pattern) if pattern is not None else None
        if words is None or added is None:
            return None
        encoder = cls(backend, words, added)
        expected = [enc.ids for enc in backend.encode_batch_fast(encoder._probes(), add_special_tokens=False)]
        if encoder.encode(encoder._probes()) != expected:
            logger.debug("word-cache encoder disabled: probe text encodes differently")
            return None
        return encoder

    def _probes(self) -> list[str]:
        specials = list(self._added)[:8]
        return [_PROBE, "".join(f"{word}{_PROBE[i * 7 : i * 7 + 9]}" for i, word in enumerate(specials))]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        ids, offsets = self.encode_flat(texts)
        return [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(len(texts))]

    def encode_flat(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """All texts' ids concatenated, and offsets: text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``."""
        if len(self._pieces) > MAX_CACHED_WORDS:  # distinct words (numbers, names) grow with the data: start over
            self._number.clear()
            self._pieces.clear()
        number, pieces = self._number, self._pieces
        word_lists = [self._split(text) if text.isascii() else [] for text in texts]
        model, table, added = self._model, self._bytes, self._added
        for word in set(chain.from_iterable(word_lists)).difference(number):
            special = added.get(word)
            number[word] = len(pieces)
            pieces.append((special,) if special is not None else _ids(model.tokenize(word.translate(table))))
        numbers = [list(map(number.__getitem__, words)) for words in word_lists]
        slow = [index for index, text in enumerate(texts) if not text.isascii()]
        cached = len(pieces)
        if slow:  # each such text becomes one "word" of its own, for this call only
            encoded = self._backend.encode_batch_fast([texts[i] for i in slow], add_special_tokens=False)
            for index, enc in zip(slow, encoded, strict=True):
                numbers[index] = [len(pieces)]
                pieces.append(tuple(enc.ids))
        try:
            return self._gather(numbers)
        finally:
            del pieces[cached:]

    def _gather(self, word_lists: list[list[int]]) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Concatenate the cached ids of each text's words (numpy gathers, no per-token Python work)."""
        counts = np.fromiter(map(len, word_lists), np.int64, len(word_lists))
        sequence = np.fromiter(chain.from_iterable(word_lists), np.int64, int(counts.sum()))
        piece_lengths = np.fromiter(map(len, self._pieces), np.int64, len(self._pieces))
        piece_starts = np.zeros(len(self._pieces) + 1, np.int64)
        np.cumsum(piece_lengths, out=piece_starts[1:])
        flat = np.fromiter(chain.from_iterable(self._pieces), np.int32, int(piece_starts[-1]))
        lengths = piece_lengths[sequence]
        ends = np.cumsum(lengths)
        gather = np.repeat(piece_starts[sequence] - (ends - lengths), lengths) + np.arange(ends[-1] if len(ends) else 0)
        word_ends = np.cumsum(counts)
        offsets = np.zeros(len(word_lists) + 1, np.int64)
        offsets[1:] = np.concatenate([[0], ends])[word_ends]
        return flat[gather], offsets

    def _split(self, text: str) -> list[str]:
        """Added tokens and words of ``text``, in order (added tokens are split out first)."""
        findall = self._words.findall
        if len(self._stages) == 1:  # the usual case: no normalized added tokens
            words: list[str] = []
            for position, part in enumerate(self._stages[0].split(text)):
                if position % 2:
                    words.append(part)
                elif part:
                    words.extend(findall(part))
            return words
        pieces = [(text, False)]
        for stage in self._stages:
            split: list[tuple[str, bool]] = []
            for piece, is_token in pieces:
                if is_token:
                    split.append((piece, True))
                else:
                    split.extend((part, bool(i % 2)) for i, part in enumerate(stage.split(piece)) if part)
            pieces = split
        words = []
        for piece, is_token in pieces:
            if is_token:
                words.append(piece)
            else:
                words.extend(findall(piece))
        return words


#: Unicode classes the word patterns use, and their members among ASCII characters.
_ASCII_CLASSES = {"L": "A-Za-z", "N": "0-9"}


def _compile_words(pattern: str) -> re.Pattern[str] | None:
    """The word regex for ASCII texts, with ``\\p{L}``/``\\p{N}`` spelled out in ASCII (the ``re`` module has
    no Unicode classes); None for patterns using other constructs."""
    ascii_pattern = _ascii_classes(pattern)
    if ascii_pattern is None:
        return None
    try:
        return re.compile(ascii_pattern, re.ASCII)
    except re.error:
        return None


def _ascii_classes(pattern: str) -> str | None:
    """``pattern`` with ``\\p{L}`` and ``\\p{N}`` replaced by their ASCII ranges (None: other classes)."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escape = pattern[i : i + 2]
            if escape in ("\\p", "\\P"):
                match = re.match(r"\\p\{(\w+)\}", pattern[i:])
                if escape == "\\P" or match is None or match.group(1) not in _ASCII_CLASSES:
                    return None
                ranges = _ASCII_CLASSES[match.group(1)]
                out.append(ranges if in_class else f"[{ranges}]")
                i += len(match.group(0))
                continue
            out.append(escape)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a literal ] first in a class
                out.append("\\]")
                i += 1
        elif char == "]" and in_class:
            in_class = False
            out.append(char)
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _supported_pattern(backend: Any) -> str | None:
    """The word regex of a byte-level BPE pipeline this encoder reproduces exactly, else None."""
    if backend.truncation is not None or backend.padding is not None or backend.encode_special_tokens:
        return None
    model = backend.model
    if type(model).__name__ != "BPE" or model.dropout or model.continuing_subword_prefix or model.end_of_word_suffix:
        return None
    if not _ascii_identity(backend.normalizer):
        return None
    pre = json.loads(backend.pre_tokenizer.__getstate__()) if backend.pre_tokenizer is not None else None
    if pre is None:
        return None
    if pre["type"] == "ByteLevel":
        return GPT2_PATTERN if pre.get("use_regex", True) and not pre.get("add_prefix_space") else None
    if pre["type"] != "Sequence" or len(pre["pretokenizers"]) != 2:
        return None
    split, byte_level = pre["pretokenizers"]
    if byte_level["type"] != "ByteLevel" or byte_level.get("use_regex", True) or byte_level.get("add_prefix_space"):
        return None
    if split["type"] != "Split" or split.get("behavior") != "Isolated" or split.get("invert"):
        return None
    pattern = split["pattern"]
    if "Regex" in pattern:
        return str(pattern["Regex"])
    return re.escape(pattern["String"]) if "String" in pattern else None


def _ascii_identity(normalizer: Any) -> bool:
    if normalizer is None:
        return True
    state = json.loads(normalizer.__getstate__())
    parts = state["normalizers"] if state["type"] == "Sequence" else [state]
    return all(part["type"] in _ASCII_IDENTITY_NORMALIZERS for part in parts)


def _added_tokens(backend: Any) -> list[tuple[str, int, bool]] | None:
    """Added tokens (content, id, normalized) when all of them split plainly, else None."""
    added: list[tuple[str, int, bool]] = []
    normalizing = backend.normalizer is not None
    for token_id, token in backend.get_added_tokens_decoder().items():
        if token.lstrip or token.rstrip or token.single_word:
            return None
        if normalizing and token.normalized and not token.content.isascii():
            return None  # matched against normalized text, which may differ from the raw content
        added.append((token.content, int(token_id), bool(token.normalized)))
    return added


def _ids(tokens: list[Any]) -> tuple[int, ...]:
    return tuple(token.id for token in tokens)
