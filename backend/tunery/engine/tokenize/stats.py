"""Token statistics of a tokenized dataset: rows, tokens, truncation and the length distribution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows


@dataclass(frozen=True)
class LengthSummary:
    min: int = 0
    mean: float = 0.0
    p50: int = 0
    p95: int = 0
    max: int = 0


@dataclass(frozen=True)
class TokenStats:
    """``examples``: sequences encoded (one per example); ``rows``: dataset rows after packing.

    ``lengths`` and ``histogram`` describe the encoded sequences (after the cutoff, before packing);
    ``histogram`` is a list of (upper bound, count) with power-of-two bounds.
    """

    examples: int
    rows: int
    tokens: int
    trained_tokens: int
    truncated: int
    dropped: int
    cutoff_len: int
    lengths: LengthSummary = field(default_factory=LengthSummary)
    histogram: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenStats:
        values = dict(data)
        values["lengths"] = LengthSummary(**values["lengths"])
        values["histogram"] = [(int(a), int(b)) for a, b in values["histogram"]]
        return cls(**values)


def summarize_lengths(lengths: Sequence[int] | np.ndarray) -> LengthSummary:
    values = np.asarray(lengths, dtype=np.int64)
    if values.size == 0:
        return LengthSummary()
    return LengthSummary(
        min=int(values.min()),
        mean=round(float(values.mean()), 2),
        p50=int(np.percentile(values, 50, method="lower")),
        p95=int(np.percentile(values, 95, method="lower")),
        max=int(values.max()),
    )


def length_histogram(lengths: Sequence[int] | np.ndarray, cutoff_len: int) -> list[tuple[int, int]]:
    """Counts of lengths in (prev, bound] with bounds 16, 32, 64, ... up to and including cutoff_len."""
    values = np.asarray(lengths, dtype=np.int64)
    bounds: list[int] = []
    bound = 16
    while bound < cutoff_len:
        bounds.append(bound)
        bound *= 2
    bounds.append(max(cutoff_len, int(values.max()) if values.size else 0))
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds))
    return [(b, int(c)) for b, c in zip(bounds, counts.tolist(), strict=True)]


def compute_stats(
    sequence_lengths: Sequence[int] | np.ndarray,
    rows: TokenRows,
    truncated: int,
    dropped: int,
    cutoff_len: int,
) -> TokenStats:
    trained = int(np.count_nonzero(rows.labels != IGNORE_INDEX))
    return stats_from_counts(
        sequence_lengths, len(rows), int(rows.offsets[-1]), trained, truncated, dropped, cutoff_len
    )


def stats_from_counts(
    sequence_lengths: Sequence[int] | np.ndarray,
    rows: int,
    tokens: int,
    trained_tokens: int,
    truncated: int,
    dropped: int,
    cutoff_len: int,
) -> TokenStats:
    """Statistics from counts gathered while rows were written (the rows themselves may be on disk)."""
    return TokenStats(
        examples=len(sequence_lengths),
        rows=rows,
        tokens=tokens,
        trained_tokens=trained_tokens,
        truncated=truncated,
        dropped=dropped,
        cutoff_len=cutoff_len,
        lengths=summarize_lengths(sequence_lengths),
        histogram=length_histogram(sequence_lengths, cutoff_len),
    )
