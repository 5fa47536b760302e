"""Which rows of which datasets make the train and eval sets, as arrays of row indices.

The same choices as :func:`tunery.engine.data.load.load_examples` makes on lists of examples (num_samples,
max_samples, mixing, the validation split, one eval set per dataset), made on integer indices instead so
millions of rows cost a few bytes each: the rows themselves stay on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tunery.engine.data.api import DataError
from tunery.engine.data.mixing import mix, sample_positions, validation_count
from tunery.spec.data import DataSection

Indices = npt.NDArray[np.int64]


@dataclass
class SourceIndex:
    """One dataset's rows as read: ``valid_of_raw[i]`` is the number of raw row ``i`` among the valid rows
    (-1 for a bad row); ``base`` is where its valid rows start in the shared row store."""

    name: str
    valid_of_raw: Indices
    base: int

    @property
    def raw_count(self) -> int:
        return len(self.valid_of_raw)


@dataclass
class Selection:
    train: Indices
    eval: Indices | None
    eval_by_dataset: dict[str, Indices] | None


def draw_positions(
    total: int, num_samples: int | None, max_samples: int | None, rng: np.random.RandomState
) -> list[int] | None:
    """Raw row positions a dataset contributes (None: all rows, in order), as ``load._load_list`` chooses them."""
    positions: list[int] | None = None
    if num_samples is not None:
        positions = sample_positions(total, num_samples, rng)
    if max_samples is not None and max_samples < (total if positions is None else len(positions)):
        positions = list(range(max_samples)) if positions is None else positions[:max_samples]
    return positions


def valid_rows(source: SourceIndex, positions: Sequence[int] | None) -> Indices:
    """Store indices of the valid rows at ``positions`` (repeats kept; bad rows left out)."""
    if positions is None:
        count = int(np.count_nonzero(source.valid_of_raw >= 0))
        return np.arange(source.base, source.base + count, dtype=np.int64)
    mapped = source.valid_of_raw[np.asarray(positions, dtype=np.int64)]
    return mapped[mapped >= 0] + source.base


def mix_indices(parts: Sequence[Indices], strategy: str, probabilities: Sequence[float] | None, seed: int) -> Indices:
    """:func:`mixing.mix` on index arrays (concat, interleave_under, interleave_over)."""
    if len(parts) == 1:
        return parts[0]
    if strategy == "concat":
        return np.concatenate(parts)
    mixed = mix([part.tolist() for part in parts], strategy, probabilities, seed)
    return np.asarray(mixed, dtype=np.int64)


def split_indices(indices: Indices, val_size: float, seed: int) -> tuple[Indices, Indices]:
    """:func:`mixing.split_validation` on an index array: the same rows in the same order."""
    total = len(indices)
    count = validation_count(val_size, total)
    if count >= total:
        raise DataError(f"val_size {val_size} takes {count} of the {total} training examples; none would be left")
    order = np.random.default_rng(seed).permutation(total)
    return indices[order[count:]], indices[order[:count]]


def select(
    data: DataSection, seed: int, train: Sequence[Indices], evaluation: Sequence[Indices], eval_names: Sequence[str]
) -> Selection:
    """Mix the datasets' chosen rows and split off the validation set (``load.load_examples``'s steps)."""
    train_rows = mix_indices(train, data.mix_strategy, data.interleave_probs, seed) if train else _none()
    eval_rows: Indices | None = None
    by_dataset: dict[str, Indices] | None = None
    if evaluation:
        if data.eval_on_each_dataset:
            by_dataset = dict(zip(eval_names, evaluation, strict=True))
            eval_rows = np.concatenate(evaluation)
        else:
            probs = data.interleave_probs
            probs = probs if probs is not None and len(probs) == len(evaluation) else None
            eval_rows = mix_indices(evaluation, data.mix_strategy, probs, seed)
    if data.val_size > 1e-6 and len(train_rows):
        train_rows, eval_rows = split_indices(train_rows, data.val_size, seed)
    return Selection(train_rows, eval_rows, by_dataset)


def _none() -> Indices:
    return np.zeros(0, dtype=np.int64)
