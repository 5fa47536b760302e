"""Batched text -> token ids with the fast tokenizer, and a fingerprint of the tokenizer."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

from tunery.engine.tokenize.wordcache import WordCacheEncoder

#: Texts sent to the tokenizer in one call; large batches let the Rust tokenizer work in parallel.
ENCODE_BATCH = 8192


@dataclass(frozen=True)
class TokenPool:
    """Token ids of many texts in one array: text ``i`` is ``ids[starts[i] : starts[i] + lengths[i]]``
    (repeated texts share their ids)."""

    ids: npt.NDArray[np.int32]
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.starts)

    def get(self, index: int) -> list[int]:
        start = int(self.starts[index])
        return self.ids[start : start + int(self.lengths[index])].tolist()  # type: ignore[no-any-return]


def encode_pool(tokenizer: Any, texts: Sequence[str]) -> TokenPool:
    """Token ids of each text, without special tokens added (markers in the text are still special).

    Repeated texts (shared prompts, system and tool blocks) are tokenized once.
    """
    unique = list(dict.fromkeys(texts))
    ids, offsets = _encode(tokenizer, unique)
    if len(unique) == len(texts):
        return TokenPool(ids, offsets[:-1], np.diff(offsets))
    number = {text: i for i, text in enumerate(unique)}
    which = np.fromiter(map(number.__getitem__, texts), np.int64, len(texts))
    return TokenPool(ids, offsets[which], np.diff(offsets)[which])


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text as lists (see :func:`encode_pool`)."""
    pool = encode_pool(tokenizer, texts)
    return [pool.get(i) for i in range(len(pool))]


#: The word-cache encoder of each tokenizer (with the vocabulary size it was built for): its cache of words
#: then lives across batches, and its probe runs once.
_ENCODERS: weakref.WeakKeyDictionary[Any, tuple[int, WordCacheEncoder | None]] = weakref.WeakKeyDictionary()


def _word_cache(tokenizer: Any) -> WordCacheEncoder | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    size = backend.get_vocab_size(with_added_tokens=True) if backend is not None else -1
    try:
        known = _ENCODERS.get(tokenizer)
    except TypeError:  # not weakly referenceable: build one per call
        return WordCacheEncoder.for_tokenizer(tokenizer)
    if known is not None and known[0] == size:
        return known[1]
    encoder = WordCacheEncoder.for_tokenizer(tokenizer)
    _ENCODERS[tokenizer] = (size, encoder)
    return encoder


def _encode(tokenizer: Any, texts: Sequence[str]) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """(ids of all texts concatenated, offsets): the word-cache encoder when it applies, else the tokenizer."""
    fast = _word_cache(tokenizer)
    if fast is not None:
        return fast.encode_flat(texts)
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    ids: list[list[int]] = []
    for start in range(0, len(texts), ENCODE_BATCH):
        chunk = list(texts[start : start + ENCODE_BATCH])
        if backend is not None:
            ids.extend(enc.ids for enc in backend.encode_batch_fast(chunk, add_special_tokens=False))
        else:
            ids.extend(tokenizer(chunk, add_special_tokens=False, return_attention_mask=False)["input_ids"])
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, ids), np.int64, len(ids)), out=offsets[1:])
    return np.fromiter(chain.from_iterable(ids), np.int32, int(offsets[-1])), offsets


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of everything in the tokenizer that changes ids: vocabulary, merges, added/special tokens."""
    digest = xxhash.xxh3_128()
    digest.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        vocab = tokenizer.get_vocab()
        digest.update(repr(sorted(vocab.items())).encode())
    for name in ("bos_token", "eos_token", "pad_token", "unk_token", "add_bos_token", "add_eos_token"):
        digest.update(f"{name}={getattr(tokenizer, name, None)!r};".encode())
    digest.update(repr(sorted(str(tok) for tok in tokenizer.all_special_tokens)).encode())
    digest.update(repr(getattr(tokenizer, "split_special_tokens", None)).encode())
    return digest.hexdigest()
