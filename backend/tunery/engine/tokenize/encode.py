"""Examples -> token rows for one stage and its options, chunk by chunk (shared by the pipeline,
the streaming dataset and the preview)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, Literal

import numpy as np

from tunery.engine.data.types import Example
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.columns import ColumnRows, RowKind
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.packing import pack_rows
from tunery.engine.tokenize.parallel import map_chunks, workers_for
from tunery.engine.tokenize.preference import STAGE_ROW_KINDS, encode_column_rows
from tunery.engine.tokenize.pretrain import document_ids, encode_pretrain, pack_blocks
from tunery.engine.tokenize.rows import TokenRows
from tunery.engine.tokenize.stats import TokenStats, compute_stats
from tunery.engine.tokenize.supervised import EncodeOptions, encode_supervised_rows

#: Examples encoded per chunk: big enough for fast batched tokenization, small enough to bound memory.
CHUNK_EXAMPLES = 2048

PackMode = Literal["none", "neat", "concat"]


@dataclass(frozen=True)
class Recipe:
    """How examples become rows: stage, template name, encoding options and packing."""

    stage: str
    options: EncodeOptions
    template_name: str | None = None
    packing: bool = False
    neat_packing: bool = False

    @property
    def row_kind(self) -> RowKind | None:
        """The kind of rows of a preference or RL stage (``tokenize.columns``); None for pt/sft token rows."""
        return STAGE_ROW_KINDS.get(self.stage)

    @property
    def pack_mode(self) -> PackMode:
        if not self.packing:
            return "none"
        return "neat" if self.neat_packing and self.stage != "pt" else "concat"


@dataclass
class Accumulator:
    """Rows and per-sequence numbers gathered over chunks."""

    parts: list[TokenRows] = field(default_factory=list)
    sequence_lengths: list[np.ndarray] = field(default_factory=list)
    truncated: int = 0
    dropped: int = 0

    def stats(self, rows: TokenRows, cutoff_len: int) -> TokenStats:
        lengths = np.concatenate(self.sequence_lengths) if self.sequence_lengths else np.zeros(0, np.int64)
        return compute_stats(lengths, rows, self.truncated, self.dropped, cutoff_len)


def chunks(examples: Iterable[Example], size: int) -> Iterator[list[Example]]:
    iterator = iter(examples)
    while chunk := list(islice(iterator, size)):
        yield chunk


def encode_sequences(
    examples: Sequence[Example], tokenizer: Any, template: ChatTemplate | None, recipe: Recipe
) -> tuple[TokenRows, np.ndarray, int]:
    """One row per example, cut to the cutoff: (rows, untruncated lengths, number truncated)."""
    cutoff = recipe.options.cutoff_len
    if recipe.row_kind is not None:
        raise TokenizeError(f"stage '{recipe.stage}' has {recipe.row_kind} rows: use encode_columns")
    if recipe.stage == "pt":
        encoded = encode_pretrain(examples, tokenizer, recipe.template_name, cutoff)
        rows = TokenRows.from_lists(encoded.input_ids, encoded.labels)
        return rows, np.asarray(encoded.full_lengths, dtype=np.int64), encoded.truncated(cutoff)
    if template is None:
        raise TokenizeError(f"stage '{recipe.stage}' needs a chat template")
    rows, full_lengths = encode_supervised_rows(examples, tokenizer, template, recipe.options)
    return rows, full_lengths, int((full_lengths > cutoff).sum())


def _column_chunk(
    chunk: list[Example], kind: RowKind, tokenizer: Any, template: ChatTemplate, options: EncodeOptions
) -> tuple[ColumnRows, int]:
    return encode_column_rows(kind, chunk, tokenizer, template, options), len(chunk)


def encode_columns(
    examples: Iterable[Example],
    tokenizer: Any,
    template: ChatTemplate | None,
    recipe: Recipe,
    kind: RowKind,
    workers: int = 1,
) -> tuple[ColumnRows, TokenStats]:
    """Rows of a preference or RL stage, chunk by chunk (in ``workers`` processes), with their statistics."""
    if template is None:
        raise TokenizeError(f"stage '{recipe.stage}' needs a chat template")
    parts: list[ColumnRows] = []
    starts: list[int] = []
    count = 0
    encode = partial(_column_chunk, kind=kind, tokenizer=tokenizer, template=template, options=recipe.options)
    for rows, size in map_chunks(encode, chunks(examples, CHUNK_EXAMPLES), workers):
        parts.append(rows)
        starts.append(count)
        count += size
    rows = ColumnRows.concat(kind, parts, starts)
    return rows, rows.stats(count, recipe.options.cutoff_len)


def encode_all(
    examples: Iterable[Example],
    tokenizer: Any,
    template: ChatTemplate | None,
    recipe: Recipe,
    workers: int = 1,
) -> tuple[TokenRows | ColumnRows, TokenStats]:
    """Every example encoded (and packed if asked) into one set of rows, with its statistics. ``workers`` > 1
    (``preprocessing_num_workers``) encodes the chunks in that many processes; the rows are the same."""
    workers = workers_for(examples, workers)
    if recipe.row_kind is not None:
        return encode_columns(examples, tokenizer, template, recipe, recipe.row_kind, workers)
    acc = Accumulator()
    cutoff = recipe.options.cutoff_len
    if recipe.stage == "pt" and recipe.packing:
        leftover: list[int] = []
        encode_docs = partial(document_ids, tokenizer=tokenizer, template_name=recipe.template_name)
        for docs in map_chunks(encode_docs, chunks(examples, CHUNK_EXAMPLES), workers):
            blocks, leftover = pack_blocks(docs, tokenizer, cutoff, leftover)
            acc.parts.append(blocks)
            acc.sequence_lengths.append(np.fromiter((len(d) for d in docs), np.int64, len(docs)))
        rows = TokenRows.concat(acc.parts)
        return rows, acc.stats(rows, cutoff)

    encode = partial(encode_sequences, tokenizer=tokenizer, template=template, recipe=recipe)
    for rows, _, truncated in map_chunks(encode, chunks(examples, CHUNK_EXAMPLES), workers):
        acc.parts.append(rows)
        acc.sequence_lengths.append(rows.lengths)
        acc.truncated += truncated
    rows = TokenRows.concat(acc.parts)
    if recipe.pack_mode != "none":
        rows, acc.dropped = pack_rows(rows, cutoff, neat=recipe.pack_mode == "neat")
    return rows, acc.stats(rows, cutoff)
