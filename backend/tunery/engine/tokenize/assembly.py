"""Rows built with numpy from a token pool and a plan of segments (slices of the pool, trained or masked):
one gather per chunk of examples instead of Python lists per turn and per row (see ``supervised.plan_row``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows
from tunery.engine.tokenize.text import TokenPool


@dataclass
class SegmentPlan:
    """Segments of all rows, in order, as columns (pool start, length, trained, first label is eos)."""

    start: list[int] = field(default_factory=list)
    length: list[int] = field(default_factory=list)
    trained: list[bool] = field(default_factory=list)
    eos_first: list[bool] = field(default_factory=list)
    row_lengths: list[int] = field(default_factory=list)
    full_lengths: list[int] = field(default_factory=list)

    def add(self, start: int, length: int, trained: bool, eos_first: bool = False) -> None:
        self.start.append(start)
        self.length.append(length)
        self.trained.append(trained)
        self.eos_first.append(eos_first)


def build_rows(plan: SegmentPlan, pool: npt.NDArray[np.int32], eos_id: int | None = None) -> TokenRows:
    """The rows of ``plan`` over the flat ``pool`` of token ids."""
    lengths = np.asarray(plan.length, dtype=np.int64)
    ends = np.cumsum(lengths)
    out_starts = ends - lengths
    total = int(ends[-1]) if len(ends) else 0
    gather = np.repeat(np.asarray(plan.start, dtype=np.int64) - out_starts, lengths) + np.arange(total)
    input_ids = pool[gather]
    trained = np.repeat(np.asarray(plan.trained, dtype=bool), lengths)
    labels = np.where(trained, input_ids, np.int32(IGNORE_INDEX)).astype(np.int32)
    eos_first = np.asarray(plan.eos_first, dtype=bool)
    if eos_first.any():
        if eos_id is None:
            raise ValueError("eos_first segments need eos_id")
        labels[out_starts[eos_first]] = eos_id
    offsets = np.zeros(len(plan.row_lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(plan.row_lengths, dtype=np.int64), out=offsets[1:])
    return TokenRows(input_ids, labels, offsets)


def pool_with_eos(pool: TokenPool, eos_id: int | None) -> tuple[npt.NDArray[np.int32], int | None]:
    """The pool's ids with ``eos_id`` appended (and its index), for efficient-eos rows."""
    if eos_id is None:
        return pool.ids, None
    return np.append(pool.ids, np.int32(eos_id)), len(pool.ids)
