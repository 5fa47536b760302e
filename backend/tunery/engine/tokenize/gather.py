"""The chosen rows of the row store written out as one split of a cache entry, chunk by chunk.

Three layouts, with the same rows ``encode.encode_all`` builds in memory: one row per example, SFT sequences
packed into bins (``packing.pack_rows``) and pretraining documents cut into blocks (``pretrain.pack_blocks``).
The store is memory-mapped afresh for every chunk, so the pages a chunk reads stop counting in the process's
resident memory once it is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

import numpy as np
import numpy.typing as npt

from tunery.engine.tokenize.cache import TOKEN_ROWS, EntryWriter
from tunery.engine.tokenize.npyfile import NpyAppender
from tunery.engine.tokenize.packing import greedy_knapsack
from tunery.engine.tokenize.rows import IGNORE_INDEX
from tunery.engine.tokenize.spill import StoredRows
from tunery.engine.tokenize.stats import TokenStats, stats_from_counts

#: Rows (sequences) gathered per step.
GATHER_ROWS = 4096

Int64s = npt.NDArray[np.int64]


def take_index(starts: Int64s, lengths: npt.NDArray[np.int32] | Int64s) -> Int64s:
    """Positions in the store of the tokens of rows starting at ``starts`` with ``lengths``, concatenated."""
    total = int(lengths.sum())
    out_starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out_starts[1:])
    return np.arange(total, dtype=np.int64) + np.repeat(starts - out_starts, lengths)


def _read(store: StoredRows, rows: Int64s) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Ids and labels of ``rows`` (store indices), concatenated."""
    take = take_index(store.offsets[rows], store.lengths[rows])
    ids_map = np.load(store.ids_path, mmap_mode="r")
    ids = np.asarray(ids_map[take])
    del ids_map
    if store.documents:
        return ids, ids
    labels_map = np.load(store.labels_path, mmap_mode="r")
    labels = np.asarray(labels_map[take])
    del labels_map
    return ids, labels


def steps(count: int) -> Iterator[slice]:
    for start in range(0, count, GATHER_ROWS):
        yield slice(start, min(start + GATHER_ROWS, count))


class _Arrays:
    """The appenders of one split's arrays."""

    def __init__(self, writer: EntryWriter, positions: bool) -> None:
        self.ids = writer.appender("input_ids", np.int32)
        self.labels = writer.appender("labels", np.int32)
        self.offsets = writer.appender("offsets", np.int64)
        self.positions = writer.appender("position_ids", np.int32) if positions else None
        self.offsets.append(np.zeros(1, dtype=np.int64))
        self.tokens = 0
        self.trained = 0

    def add(self, ids: npt.NDArray[np.int32], labels: npt.NDArray[np.int32], ends: Int64s) -> None:
        self.ids.append(ids)
        self.labels.append(labels)
        self.offsets.append(self.tokens + ends)
        self.tokens += len(ids)
        self.trained += int(np.count_nonzero(labels != IGNORE_INDEX))

    def files(self) -> dict[str, NpyAppender]:
        files = {"input_ids": self.ids, "labels": self.labels, "offsets": self.offsets}
        if self.positions is not None:
            files["position_ids"] = self.positions
        return files


def _truncated(store: StoredRows, rows: Int64s, cutoff: int) -> int:
    return int(np.count_nonzero(store.full_lengths[rows] > cutoff))


def write_rows(writer: EntryWriter, split: str, store: StoredRows, rows: Int64s, cutoff: int) -> TokenStats:
    """One row per chosen example, in the chosen order."""
    if _whole_store(store, rows):
        return _link_rows(writer, split, store, cutoff)
    out = _Arrays(writer, positions=False)
    for step in steps(len(rows)):
        chosen = rows[step]
        ids, labels = _read(store, chosen)
        out.add(ids, labels, np.cumsum(store.lengths[chosen]))
    lengths = store.lengths[rows]
    stats = stats_from_counts(lengths, len(rows), out.tokens, out.trained, _truncated(store, rows, cutoff), 0, cutoff)
    writer.add_files(split, TOKEN_ROWS, stats, out.files())
    return stats


def _whole_store(store: StoredRows, rows: Int64s) -> bool:
    """Whether ``rows`` are all the store's rows in their order (the usual case: one dataset, no split)."""
    count = len(store.lengths)
    return (
        store.ids_file is not None
        and not store.documents
        and len(rows) == count
        and bool(np.array_equal(rows, np.arange(count, dtype=np.int64)))
    )


def _link_rows(writer: EntryWriter, split: str, store: StoredRows, cutoff: int) -> TokenStats:
    """The store's files become the split's files (hard links: nothing is copied)."""
    assert store.ids_file is not None and store.labels_file is not None
    ids, labels = writer.link("input_ids", store.ids_file), writer.link("labels", store.labels_file)
    offsets = writer.appender("offsets", np.int64)
    offsets.append(store.offsets)
    trained = int(store.trained.sum())
    rows = np.arange(len(store.lengths), dtype=np.int64)
    tokens = int(store.offsets[-1])
    stats = stats_from_counts(store.lengths, len(rows), tokens, trained, _truncated(store, rows, cutoff), 0, cutoff)
    writer.add_files(split, TOKEN_ROWS, stats, {"input_ids": ids, "labels": labels, "offsets": offsets})
    return stats


def write_packed(
    writer: EntryWriter, split: str, store: StoredRows, rows: Int64s, cutoff: int, neat: bool
) -> TokenStats:
    """SFT sequences packed into bins of at most ``cutoff`` tokens (``packing.pack_rows``' bins and labels)."""
    lengths = store.lengths[rows]
    bins = greedy_knapsack(lengths.tolist(), cutoff)
    order = np.fromiter(chain.from_iterable(bins), dtype=np.int64)
    dropped = len(rows) - len(order)
    chosen_all, seq_lengths = rows[order], lengths[order]
    bin_of_seq = np.repeat(np.arange(len(bins), dtype=np.int64), [len(b) for b in bins])
    ends_bin = np.append(bin_of_seq[1:] != bin_of_seq[:-1], True)  # the sequence is its bin's last
    out = _Arrays(writer, positions=True)
    assert out.positions is not None
    for step in steps(len(order)):
        chosen, seq = chosen_all[step], seq_lengths[step]
        ids, labels = _read(store, chosen)
        starts = np.zeros(len(seq), dtype=np.int64)
        np.cumsum(seq[:-1], out=starts[1:])
        out.positions.append(np.arange(len(ids), dtype=np.int64) - np.repeat(starts, seq))
        if neat:
            labels = labels.copy()
            labels[starts[seq > 0]] = IGNORE_INDEX
        out.add(ids, labels, (starts + seq)[np.flatnonzero(ends_bin[step])])
    truncated = _truncated(store, rows, cutoff)
    stats = stats_from_counts(lengths, len(bins), out.tokens, out.trained, truncated, dropped, cutoff)
    writer.add_files(split, TOKEN_ROWS, stats, out.files())
    return stats


def write_blocks(
    writer: EntryWriter, split: str, store: StoredRows, rows: Int64s, block: int, bos_id: int | None
) -> TokenStats:
    """Pretraining documents concatenated and cut into full blocks (``pretrain.pack_blocks``): the leftover
    shorter than a block is dropped and, where the tokenizer adds bos, each block starts with it."""
    lengths = store.lengths[rows]
    keep = int(lengths.sum()) // block * block
    out = _Arrays(writer, positions=False)
    written = 0
    for step in steps(len(rows)):
        if written >= keep:
            break
        ids, _ = _read(store, rows[step])
        ids = ids[: keep - written].copy()
        if bos_id is not None:
            ids[(-written) % block :: block] = bos_id
        ends = np.arange(block - written % block, len(ids) + 1, block, dtype=np.int64)
        out.add(ids, ids, ends)
        written += len(ids)
    stats = stats_from_counts(lengths, keep // block, out.tokens, out.trained, 0, 0, block)
    writer.add_files(split, TOKEN_ROWS, stats, out.files())
    return stats
