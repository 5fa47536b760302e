"""Mixing several datasets and splitting off a validation set, with the datasets library's semantics.

``interleave`` follows ``datasets.interleave_datasets`` for map-style datasets: without probabilities it
cycles through the sources (first_exhausted: min length rounds, all_exhausted: max length rounds,
restarting the shorter ones); with probabilities it draws sources from ``np.random.default_rng(seed)``
in blocks of 1000 and stops once one (first_exhausted) or every (all_exhausted) source has been used up.
The same code serves lists and lazy streams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import Literal, TypeVar

import numpy as np

from tunery.engine.data.api import DataError

T = TypeVar("T")
Stopping = Literal["first_exhausted", "all_exhausted"]
STOPPING: dict[str, Stopping] = {"interleave_under": "first_exhausted", "interleave_over": "all_exhausted"}
_END = object()


class _Cursor:
    """A restartable iterator that knows whether it has just handed out its last item."""

    __slots__ = ("exhausted", "factory", "head", "items")

    def __init__(self, factory: Callable[[], Iterable[object]]) -> None:
        self.factory = factory
        self.items = iter(factory())
        self.head = next(self.items, _END)
        self.exhausted = self.head is _END

    def take(self, restart: bool) -> object:
        item = self.head
        self.head = next(self.items, _END)
        if self.head is _END:
            self.exhausted = True
            if restart:
                self.items = iter(self.factory())
                self.head = next(self.items, _END)
        return item


def interleave(
    sources: Sequence[Callable[[], Iterable[T]]],
    probabilities: Sequence[float] | None,
    seed: int,
    stopping: Stopping,
) -> Iterator[T]:
    cursors = [_Cursor(factory) for factory in sources]
    if any(cursor.head is _END for cursor in cursors):
        return
    restart = stopping == "all_exhausted"
    if probabilities is None:
        while True:
            if restart and all(cursor.exhausted for cursor in cursors):
                return
            if not restart and any(cursor.head is _END for cursor in cursors):
                return
            for cursor in cursors:
                yield cursor.take(restart)  # type: ignore[misc]
    if len(probabilities) != len(sources):
        raise DataError(f"interleave_probs has {len(probabilities)} values for {len(sources)} datasets")
    drawable = [index for index, p in enumerate(probabilities) if p > 0]
    if restart and len(drawable) < len(sources):
        raise DataError("mix_strategy interleave_over cannot use up a dataset whose interleave_probs is 0")
    rng = np.random.default_rng(seed)
    while True:
        for index in rng.choice(len(sources), size=1000, p=probabilities).tolist():
            cursor = cursors[index]
            yield cursor.take(restart)  # type: ignore[misc]
            if cursor.exhausted and (not restart or all(cursors[i].exhausted for i in drawable)):
                return


def mix(parts: Sequence[list[T]], strategy: str, probabilities: Sequence[float] | None, seed: int) -> list[T]:
    """One list from several datasets' examples (concat, interleave_under, interleave_over)."""
    if len(parts) == 1:
        return parts[0]
    if strategy == "concat":
        return list(chain.from_iterable(parts))
    sources = [_constant(part) for part in parts]
    return list(interleave(sources, probabilities, seed, STOPPING[strategy]))


def _constant(part: list[T]) -> Callable[[], Iterable[T]]:
    return lambda: part


def mix_streams(
    parts: Sequence[Callable[[], Iterable[T]]], strategy: str, probabilities: Sequence[float] | None, seed: int
) -> Callable[[], Iterator[T]]:
    if len(parts) == 1:
        return lambda: iter(parts[0]())
    if strategy == "concat":
        return lambda: chain.from_iterable(part() for part in parts)
    return lambda: interleave(parts, probabilities, seed, STOPPING[strategy])


def validation_count(val_size: float, total: int) -> int:
    """Rows held out: ceil(val_size * total) for a fraction, val_size itself for a whole number."""
    return math.ceil(val_size * total) if val_size < 1 else int(val_size)


def split_validation(examples: list[T], val_size: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, validation) as ``Dataset.train_test_split(test_size=val_size, seed=seed)`` splits them."""
    total = len(examples)
    count = validation_count(val_size, total)
    if count >= total:
        raise DataError(f"val_size {val_size} takes {count} of the {total} training examples; none would be left")
    order = np.random.default_rng(seed).permutation(total).tolist()
    return [examples[i] for i in order[count:]], [examples[i] for i in order[:count]]


def sample_positions(total: int, num_samples: int, rng: np.random.RandomState) -> list[int]:
    """LLaMA-Factory's num_samples: a random subset, topped up by sampling with replacement when larger."""
    positions = rng.permutation(total)[:num_samples].tolist()
    if num_samples > total:
        positions += rng.choice(total, num_samples - total).tolist()
    return positions


def buffer_shuffle(items: Iterable[T], buffer_size: int, seed: int) -> Iterator[T]:
    """Streaming shuffle: a buffer of ``buffer_size`` items, a random one out for each one in."""
    rng = np.random.default_rng(seed)
    buffer: list[T] = []
    draws: Iterator[int] = iter(())
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        index = next(draws, None)
        if index is None:
            draws = iter(rng.integers(0, buffer_size, size=1000).tolist())
            index = next(draws)
        yield buffer[index]
        buffer[index] = item
    rng.shuffle(buffer)  # type: ignore[arg-type]
    yield from buffer
