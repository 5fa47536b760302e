"""Datasets read, converted and tokenized chunk by chunk into one on-disk row store (the spill).

Each chunk of raw rows is converted into examples and encoded (in ``preprocessing_num_workers`` processes),
and its token rows are appended to ``.npy`` files; only per-row numbers (lengths, which raw row is valid)
stay in memory. The train and eval sets are then chosen from the store by index (``data.selection``) and
written out by ``tokenize.gather``. Row errors reach the report exactly as ``data.convert`` reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tunery.engine.data.api import RowError, ValidationReport
from tunery.engine.data.convert import RowSink, convert_row
from tunery.engine.data.formats import Converter
from tunery.engine.data.registry import DatasetAttr
from tunery.engine.data.selection import SourceIndex
from tunery.engine.data.sources import Source
from tunery.engine.data.types import Example
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize import parallel
from tunery.engine.tokenize.columns import ColumnRows
from tunery.engine.tokenize.encode import Recipe, encode_sequences
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.npyfile import NpyAppender
from tunery.engine.tokenize.parallel import map_chunks
from tunery.engine.tokenize.preference import encode_column_rows
from tunery.engine.tokenize.pretrain import document_ids
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows

RawRow = tuple[str, int, Any]  # (file, 1-based row number, row dict or BadRow)
Int64s = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]


@dataclass
class EncodedChunk:
    """One chunk's result: the rows of its valid raw rows (pt/sft: one token row each; preference and RL
    stages: ``ColumnRows`` whose ``source`` says which example each row is, the others were dropped), and the
    chunk's row errors."""

    rows: TokenRows | ColumnRows
    full_lengths: Int64s
    valid: npt.NDArray[np.bool_]  # per raw row of the chunk
    errors: list[RowError]
    error_rows: list[int]  # index within the chunk of each error's row
    ref_paths: list[str] = field(default_factory=list)  # file and row number of each example (column rows)
    ref_numbers: Int64s | None = None
    kto_labels: npt.NDArray[np.int8] | None = None  # 1 / 0 per example (kto)

    @property
    def examples(self) -> int:
        return int(np.count_nonzero(self.valid))


@dataclass
class SpilledSource:
    """One dataset's rows in the store: which raw rows are valid, and the errors of the others."""

    attr: DatasetAttr
    index: SourceIndex
    errors: list[RowError]
    error_rows: Int64s  # raw index of each error's row


@dataclass
class RowStore:
    """Token rows of every dataset read so far, in reading order: ids (and labels) on disk, lengths in memory.

    ``documents``: rows are whole pretraining documents (ids only; labels equal the ids), for packing.
    """

    folder: Path
    documents: bool
    ids: NpyAppender = field(init=False)
    labels: NpyAppender | None = field(init=False)
    lengths: list[Int32s] = field(default_factory=list)
    full_lengths: list[Int32s] = field(default_factory=list)
    trained: list[Int32s] = field(default_factory=list)  # trained tokens (labels not ignored) per row
    rows: int = 0

    @property
    def examples(self) -> int:
        return self.rows  # one row per example

    def __post_init__(self) -> None:
        self.ids = NpyAppender(self.folder / "ids.npy", np.int32)
        self.labels = None if self.documents else NpyAppender(self.folder / "labels.npy", np.int32)

    def append(self, chunk: EncodedChunk) -> None:
        assert isinstance(chunk.rows, TokenRows)
        self.ids.append(chunk.rows.input_ids)
        if self.labels is not None:
            self.labels.append(chunk.rows.labels)
        # per-row numbers as int32 (a row is shorter than 2**31 tokens): these arrays are what grows with the rows
        self.lengths.append(chunk.rows.lengths.astype(np.int32))
        self.full_lengths.append(chunk.full_lengths.astype(np.int32))
        trained = np.zeros(len(chunk.rows.labels) + 1, dtype=np.int64)
        np.cumsum(chunk.rows.labels != IGNORE_INDEX, out=trained[1:])
        self.trained.append((trained[chunk.rows.offsets[1:]] - trained[chunk.rows.offsets[:-1]]).astype(np.int32))
        self.rows += len(chunk.rows)

    def finish(self) -> StoredRows:
        self.ids.close()
        if self.labels is not None:
            self.labels.close()
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int32)
        full = np.concatenate(self.full_lengths) if self.full_lengths else np.zeros(0, np.int32)
        trained = np.concatenate(self.trained) if self.trained else np.zeros(0, np.int32)
        self.lengths, self.full_lengths, self.trained = [], [], []
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        labels = self.labels if self.labels is not None else self.ids
        return StoredRows(self.ids.path, labels.path, offsets, lengths, full, trained, self.documents, self.ids, labels)


@dataclass
class StoredRows:
    """The finished store: files of ids and labels, and each row's offset, stored and untruncated length."""

    ids_path: Path
    labels_path: Path
    offsets: Int64s
    lengths: Int32s
    full_lengths: Int32s
    trained: Int32s
    documents: bool
    ids_file: NpyAppender | None = None  # the finished files (their checksums), to link into an entry whole
    labels_file: NpyAppender | None = None


class _LocalSink(RowSink):
    """A RowSink whose errors stay in this chunk's result (worker processes cannot write the report)."""

    def __init__(self, name: str) -> None:
        self.dataset = name
        self.report = ValidationReport()
        self.first = []
        self.bad = 0


def encode_chunk(
    chunk: list[RawRow], *, name: str, convert: Converter, tokenizer: Any, template: ChatTemplate | None, recipe: Recipe
) -> EncodedChunk:
    """Convert a chunk of raw rows and encode the valid ones (whole documents for pretraining packing)."""
    sink = _LocalSink(name)
    examples: list[Example] = []
    valid = np.zeros(len(chunk), dtype=np.bool_)
    error_rows: list[int] = []
    for position, (path, number, row) in enumerate(chunk):
        before = sink.bad
        example = convert_row(convert, sink, path, number, row)
        if example is not None:
            examples.append(example)
            valid[position] = True
        elif sink.bad > before:
            error_rows.append(position)
    if recipe.row_kind is not None:
        if template is None:
            raise TokenizeError(f"stage '{recipe.stage}' needs a chat template")
        columns = encode_column_rows(recipe.row_kind, examples, tokenizer, template, recipe.options)
        refs = [(ref.file, ref.row) if (ref := example.ref) is not None else ("", 0) for example in examples]
        labels = None
        if recipe.row_kind == "kto":
            labels = np.fromiter((-1 if e.kto_label is None else int(e.kto_label) for e in examples), np.int8)
        return EncodedChunk(
            columns,
            np.zeros(0, np.int64),
            valid,
            sink.report.errors,
            error_rows,
            [path for path, _ in refs],
            np.fromiter((number for _, number in refs), np.int64, len(refs)),
            labels,
        )
    if recipe.stage == "pt" and recipe.packing:
        docs = document_ids(examples, tokenizer, recipe.template_name)
        rows = TokenRows.from_lists(docs, docs)  # labels are the ids; the store keeps the ids only
        full = rows.lengths
    else:
        rows, full, _ = encode_sequences(examples, tokenizer, template, recipe)
    return EncodedChunk(rows, np.asarray(full, dtype=np.int64), valid, sink.report.errors, error_rows)


def _chunks(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _workers(chunks: Iterator[list[RawRow]], workers: int) -> tuple[Iterator[list[RawRow]], int]:
    """Small datasets (< PARALLEL_MIN_EXAMPLES rows) are encoded in this process, as ``parallel.workers_for``
    decides for lists: the first chunks are read ahead to know."""
    if workers <= 1:
        return chunks, 1
    head: list[list[RawRow]] = []
    seen = 0
    for chunk in chunks:
        head.append(chunk)
        seen += len(chunk)
        if seen >= parallel.PARALLEL_MIN_EXAMPLES:
            return chain(head, chunks), workers
    return iter(head), 1


class Store(Protocol):
    """Where chunks go: :class:`RowStore` (pt/sft) or ``spill_columns.ColumnStore`` (other stages)."""

    @property
    def examples(self) -> int: ...

    def append(self, chunk: EncodedChunk) -> None: ...


def spill_source(
    source: Source,
    converter: Converter,
    store: Store,
    encode: dict[str, Any],
    workers: int,
    limit: int | None,
    batch_size: int,
) -> SpilledSource:
    """Read ``source`` (its first ``limit`` rows when set) into ``store``, ``batch_size`` rows per chunk (the
    spec's ``preprocessing_batch_size``, as LLaMA-Factory's ``map`` batches); ``encode``: tokenizer, template,
    recipe."""
    name = source.attr.name
    rows: Iterable[RawRow] = source.iter_rows()
    if limit is not None:
        rows = islice(rows, limit)
    task = partial(encode_chunk, name=name, convert=converter, **encode)
    chunks, workers = _workers(_chunks(rows, batch_size), workers)
    base = store.examples
    valid_parts: list[Int64s] = []
    errors: list[RowError] = []
    error_rows: list[int] = []
    raw = 0
    for chunk in map_chunks(task, chunks, workers):
        numbers = np.cumsum(chunk.valid, dtype=np.int64) - 1 + (store.examples - base)
        valid_parts.append(np.where(chunk.valid, numbers, -1))
        errors.extend(chunk.errors)
        error_rows.extend(raw + position for position in chunk.error_rows)
        raw += len(chunk.valid)
        store.append(chunk)
    valid_of_raw = np.concatenate(valid_parts) if valid_parts else np.zeros(0, np.int64)
    index = SourceIndex(name, valid_of_raw, base)
    return SpilledSource(source.attr, index, errors, np.asarray(error_rows, dtype=np.int64))
