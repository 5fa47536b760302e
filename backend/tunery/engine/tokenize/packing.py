"""Packing whole SFT sequences into rows of at most ``cutoff_len`` tokens.

Bins are filled like LLaMA-Factory's greedy knapsack: each bin repeatedly takes the longest
sequence that still fits. Packed rows carry ``position_ids`` restarting at 0 for every sequence;
with neat packing the collator sends them without an attention mask, so transformers' mask
utilities (sdpa, eager) and flash-attention see separate sequences that cannot attend to each other.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows


def greedy_knapsack(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into bins whose sums are <= ``capacity``.

    Same bins as LLaMA-Factory's greedy algorithm (largest fitting item first), in O(n log n):
    items are grouped by length so only distinct lengths are searched. Items longer than
    ``capacity`` are left out.
    """
    groups: dict[int, list[int]] = defaultdict(list)
    for index, length in enumerate(lengths):
        if length <= capacity:
            groups[length].append(index)
    available = sorted(groups)
    bins: list[list[int]] = []
    while available:
        remaining = capacity
        current: list[int] = []
        while True:
            pos = bisect.bisect_right(available, remaining) - 1
            if pos < 0:
                break
            length = available[pos]
            group = groups[length]
            current.append(group.pop())
            if not group:
                del available[pos]
            remaining -= length
        bins.append(current)
    return bins


def pack_rows(rows: TokenRows, capacity: int, neat: bool = True) -> tuple[TokenRows, int]:
    """Pack the sequences of ``rows`` into bins; return the packed rows and how many were too long.

    ``neat``: the first label of every packed sequence is masked, so no sequence is trained to
    predict its first token from the previous sequence (the same loss as unpacked training).
    """
    lengths = rows.lengths
    bins = greedy_knapsack(lengths.tolist(), capacity)
    order = np.fromiter((i for b in bins for i in b), dtype=np.int64)
    dropped = len(rows) - len(order)
    if len(order) == 0:
        return TokenRows.empty(packed=True), dropped
    seq_lengths = lengths[order]
    total = int(seq_lengths.sum())
    seq_starts_out = np.zeros(len(order), dtype=np.int64)
    np.cumsum(seq_lengths[:-1], out=seq_starts_out[1:])
    # gather index: source offset of each sequence shifted to its place in the output
    shift = np.repeat(rows.offsets[order] - seq_starts_out, seq_lengths)
    gather = np.arange(total, dtype=np.int64) + shift
    positions = (np.arange(total, dtype=np.int64) - np.repeat(seq_starts_out, seq_lengths)).astype(np.int32)
    labels = rows.labels[gather]
    if neat:
        labels[seq_starts_out[seq_lengths > 0]] = IGNORE_INDEX
    bin_sizes = np.fromiter((len(b) for b in bins), dtype=np.int64)
    bin_ends = np.cumsum(bin_sizes)
    offsets = np.zeros(len(bins) + 1, dtype=np.int64)
    offsets[1:] = np.concatenate([seq_starts_out, [total]])[bin_ends]
    return TokenRows(rows.input_ids[gather], labels, offsets, positions), dropped
