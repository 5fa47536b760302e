"""Batched text -> token ids with the fast tokenizer, and a fingerprint of the tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xxhash

#: Texts sent to the tokenizer in one call; large batches let the Rust tokenizer work in parallel.
ENCODE_BATCH = 8192


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens added (markers in the text are still special).

    Repeated texts (shared prompts, system and tool blocks) are tokenized once.
    """
    unique = list(dict.fromkeys(texts))
    if len(unique) == len(texts):
        return _encode(tokenizer, texts)
    ids = dict(zip(unique, _encode(tokenizer, unique), strict=True))
    return [ids[text] for text in texts]


def _encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    ids: list[list[int]] = []
    for start in range(0, len(texts), ENCODE_BATCH):
        chunk = list(texts[start : start + ENCODE_BATCH])
        if backend is not None:
            ids.extend(enc.ids for enc in backend.encode_batch_fast(chunk, add_special_tokens=False))
        else:
            ids.extend(tokenizer(chunk, add_special_tokens=False, return_attention_mask=False)["input_ids"])
    return ids


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
