"""The row store and split writer of the preference and RL stages (``tokenize.columns`` rows), as
``spill`` / ``gather`` are for pt and sft token rows.

Every valid example is encoded once into at most one row (the cutoff may drop it); the ragged columns go to
disk, per-row numbers stay in memory. A split is the rows of its chosen examples, in their order, with
``source`` renumbered within the split, exactly as ``encode.encode_columns`` numbers them for a list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from tunery.engine.tokenize.cache import EntryWriter
from tunery.engine.tokenize.columns import COLUMNS, PER_ROW, ColumnRows, Ragged, RowKind, empty_rows, offsets_of
from tunery.engine.tokenize.gather import Int64s, steps, take_index
from tunery.engine.tokenize.npyfile import NpyAppender
from tunery.engine.tokenize.spill import EncodedChunk
from tunery.engine.tokenize.stats import TokenStats

A = TypeVar("A", bound=npt.NDArray[Any])


@dataclass
class StoredColumns:
    """The finished store. ``row_of_example[i]``: the row of valid example ``i`` (-1: dropped by the cutoff)."""

    kind: RowKind
    paths: dict[str, Path]
    lengths: dict[str, Int64s]
    offsets: dict[str, Int64s]
    per_row: dict[str, npt.NDArray[Any]]
    row_of_example: Int64s
    ref_file: npt.NDArray[np.int32]
    ref_row: Int64s
    files: list[str]
    kto_labels: npt.NDArray[np.int8] | None

    def refs(self, examples: Int64s) -> list[tuple[str, int]]:
        pairs = zip(self.ref_file[examples].tolist(), self.ref_row[examples].tolist(), strict=True)
        return [(self.files[file], row) for file, row in pairs]

    def label_counts(self, examples: Int64s) -> Counter[bool | None]:
        """Examples per KTO label (``load._warn_one_label``'s input)."""
        if self.kto_labels is None:
            return Counter()
        values = self.kto_labels[examples]
        counts: Counter[bool | None] = Counter()
        for value, label in ((1, True), (0, False), (-1, None)):
            if found := int(np.count_nonzero(values == value)):
                counts[label] = found
        return counts


@dataclass
class ColumnStore:
    folder: Path
    kind: RowKind
    examples: int = 0
    rows: int = 0
    values: dict[str, NpyAppender] = field(init=False)
    lengths: dict[str, list[Int64s]] = field(init=False)
    per_row: dict[str, list[npt.NDArray[Any]]] = field(init=False)
    row_of_example: list[Int64s] = field(default_factory=list)
    ref_file: list[npt.NDArray[np.int32]] = field(default_factory=list)
    ref_row: list[Int64s] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    kto_labels: list[npt.NDArray[np.int8]] = field(default_factory=list)

    def __post_init__(self) -> None:
        empty = empty_rows(self.kind)
        self.values = {
            name: NpyAppender(self.folder / f"{name}.npy", empty.columns[name].values.dtype)
            for name in COLUMNS[self.kind]
        }
        self.lengths = {name: [] for name in COLUMNS[self.kind]}
        self.per_row = {name: [] for name in PER_ROW[self.kind] if name != "source"}

    def append(self, chunk: EncodedChunk) -> None:
        rows = chunk.rows
        assert isinstance(rows, ColumnRows) and chunk.ref_numbers is not None
        for name, ragged in rows.columns.items():
            self.values[name].append(ragged.values)
            self.lengths[name].append(ragged.lengths.astype(np.int64))
        for name in self.per_row:
            self.per_row[name].append(rows.per_row[name])
        placed = np.full(chunk.examples, -1, dtype=np.int64)
        placed[rows.per_row["source"]] = np.arange(self.rows, self.rows + len(rows), dtype=np.int64)
        self.row_of_example.append(placed)
        numbers = [self.files.setdefault(path, len(self.files)) for path in chunk.ref_paths]
        self.ref_file.append(np.asarray(numbers, dtype=np.int32))
        self.ref_row.append(chunk.ref_numbers)
        if chunk.kto_labels is not None:
            self.kto_labels.append(chunk.kto_labels)
        self.examples += chunk.examples
        self.rows += len(rows)

    def finish(self) -> StoredColumns:
        empty = empty_rows(self.kind)
        lengths = {name: _join(parts, np.zeros(0, np.int64)) for name, parts in self.lengths.items()}
        for appender in self.values.values():
            appender.close()
        return StoredColumns(
            kind=self.kind,
            paths={name: appender.path for name, appender in self.values.items()},
            lengths=lengths,
            offsets={name: offsets_of(values) for name, values in lengths.items()},
            per_row={name: _join(parts, empty.per_row[name]) for name, parts in self.per_row.items()},
            row_of_example=_join(self.row_of_example, np.zeros(0, np.int64)),
            ref_file=_join(self.ref_file, np.zeros(0, np.int32)),
            ref_row=_join(self.ref_row, np.zeros(0, np.int64)),
            files=list(self.files),
            kto_labels=_join(self.kto_labels, np.zeros(0, np.int8)) if self.kind == "kto" else None,
        )


def _join(parts: Sequence[A], empty: A) -> A:
    return cast(A, np.concatenate(parts)) if parts else empty


def write_columns(
    writer: EntryWriter, split: str, store: StoredColumns, examples: Int64s, cutoff: int
) -> tuple[TokenStats, Int64s]:
    """The rows of ``examples`` (store example indices, in order) as one split; returns its statistics and the
    positions (within ``examples``) of the examples the cutoff dropped."""
    placed = store.row_of_example[examples]
    kept = placed >= 0
    rows, dropped = placed[kept], np.flatnonzero(~kept)
    appenders: dict[str, NpyAppender] = {}
    columns: dict[str, Ragged] = {}
    for name in COLUMNS[store.kind]:
        values = appenders[f"{name}.values"] = writer.appender(f"{name}.values", np.load(
            store.paths[name], mmap_mode="r").dtype)  # fmt: skip
        lengths = store.lengths[name][rows]
        offsets = offsets_of(lengths)
        for step in steps(len(rows)):
            chosen = rows[step]
            take = take_index(store.offsets[name][chosen], store.lengths[name][chosen])
            mapped = np.load(store.paths[name], mmap_mode="r")
            values.append(np.asarray(mapped[take]))
            del mapped
        appenders[f"{name}.offsets"] = writer.appender(f"{name}.offsets", np.int64)
        appenders[f"{name}.offsets"].append(offsets)
        columns[name] = Ragged(np.zeros(0, values.dtype), offsets)  # lengths only: what the statistics read
    per_row: dict[str, npt.NDArray[Any]] = {"source": np.flatnonzero(kept).astype(np.int64)}
    per_row.update({name: array[rows] for name, array in store.per_row.items()})
    for name in PER_ROW[store.kind]:
        appenders[name] = writer.appender(name, per_row[name].dtype)
        appenders[name].append(per_row[name])
    stats = ColumnRows(store.kind, columns, per_row).stats(len(examples), cutoff)
    writer.add_files(split, store.kind, stats, appenders)
    return stats, dropped
