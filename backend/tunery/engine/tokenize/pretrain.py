"""Pretraining encoding: each text + eos; with packing, all texts concatenated and cut into blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunery.engine.data.types import Example
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.rows import TokenRows
from tunery.engine.tokenize.supervised import Encoded
from tunery.engine.tokenize.text import encode_texts


def pretrain_text(example: Example, index: int = 0) -> str:
    """The document text of a pretraining example (LLaMA-Factory reads the first prompt message)."""
    messages = example.prompt or example.response
    if not messages:
        where = f"{example.ref.file}, row {example.ref.row}" if example.ref else f"example {index + 1}"
        raise TokenizeError(f"{where}, field 'text': pretraining example has no text")
    return messages[0].content


def eos_text(tokenizer: Any, template_name: str | None) -> str:
    """The eos appended to each document (llama3 ends documents with <|end_of_text|>, as LF does)."""
    if template_name == "llama3":
        return "<|end_of_text|>"
    if tokenizer.eos_token is None:
        raise TokenizeError("pretraining needs an eos token; the tokenizer has none")
    return str(tokenizer.eos_token)


def adds_bos(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "add_bos_token", False)) and tokenizer.bos_token is not None


def encode_pretrain(examples: Sequence[Example], tokenizer: Any, template_name: str | None, cutoff_len: int) -> Encoded:
    """One sequence per document (bos if the tokenizer adds one, text, eos), cut to ``cutoff_len``."""
    prefix = str(tokenizer.bos_token) if adds_bos(tokenizer) else ""
    suffix = eos_text(tokenizer, template_name)
    texts = [prefix + pretrain_text(example, i) + suffix for i, example in enumerate(examples)]
    out = Encoded()
    for ids in encode_texts(tokenizer, texts):
        out.full_lengths.append(len(ids))
        kept = ids[:cutoff_len]
        out.input_ids.append(kept)
        out.labels.append(list(kept))
    return out


def document_ids(examples: Sequence[Example], tokenizer: Any, template_name: str | None) -> list[list[int]]:
    """Token ids of each document followed by eos, for packing into blocks."""
    suffix = eos_text(tokenizer, template_name)
    return encode_texts(tokenizer, [pretrain_text(example, i) + suffix for i, example in enumerate(examples)])


def pack_blocks(
    documents: Sequence[Sequence[int]], tokenizer: Any, block_size: int, carry: Sequence[int] = ()
) -> tuple[TokenRows, list[int]]:
    """Concatenate documents (after ``carry``) into full blocks of ``block_size``; return the leftover.

    As in LLaMA-Factory, the first token of each block is replaced by bos when the tokenizer adds bos.
    Labels equal the ids (every token is trained).
    """
    stream = np.fromiter((token for doc in (carry, *documents) for token in doc), dtype=np.int32)
    blocks = len(stream) // block_size
    body = stream[: blocks * block_size].copy()
    leftover = stream[blocks * block_size :].tolist()
    if adds_bos(tokenizer) and blocks:
        body[::block_size] = tokenizer.bos_token_id
    offsets = np.arange(blocks + 1, dtype=np.int64) * block_size
    return TokenRows(body, body.copy(), offsets), leftover
