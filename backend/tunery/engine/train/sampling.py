"""Length-grouped sampling: batches of rows of similar length (little padding), in a random order.

Like transformers' ``group_by_length``: the shuffled rows are cut into megabatches of
``megabatch_batches`` batches, each megabatch is sorted by length and cut into batches. Unlike it, the
batches are then shuffled (transformers yields each megabatch longest first), so lengths do not follow
a sawtooth through the epoch; the batch holding the longest row still comes first, so running out of
memory shows at the first step. The order depends only on the seed and the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from torch.utils.data import Sampler

#: Batches per megabatch (transformers' LengthGroupedSampler uses 50).
MEGABATCH_BATCHES = 50


class LengthGroupedSampler(Sampler[int]):
    """Row indices in length-grouped batches of ``batch_size`` (see module doc); the DataLoader cuts the
    stream into the same batches as long as it uses the same batch size."""

    def __init__(
        self,
        lengths: npt.ArrayLike,
        batch_size: int,
        seed: int = 0,
        megabatch_batches: int = MEGABATCH_BATCHES,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if batch_size < 1 or megabatch_batches < 1:
            raise ValueError("batch_size and megabatch_batches must be positive")
        self.batch_size = batch_size
        self.seed = seed
        self.megabatch_batches = megabatch_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration gives (the Trainer calls this before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        self.epoch += 1  # a later iteration without set_epoch gets the next epoch's order
        return iter(order.tolist())

    def order(self, epoch: int) -> npt.NDArray[np.int64]:
        """All row indices, batch after batch, for ``epoch``."""
        count = len(self.lengths)
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, epoch])
        shuffled = rng.permutation(count)
        size = self.batch_size * self.megabatch_batches
        grouped = []
        for start in range(0, count, size):
            mega = shuffled[start : start + size]
            grouped.append(mega[np.argsort(-self.lengths[mega], kind="stable")])
        flat = np.concatenate(grouped)
        batches = [flat[start : start + self.batch_size] for start in range(0, count, self.batch_size)]
        # whole batches are shuffled; a short last batch stays last (the DataLoader cuts by position)
        full = len(batches) if len(batches[-1]) == self.batch_size else len(batches) - 1
        permuted = [batches[i] for i in rng.permutation(full)] + batches[full:]
        longest = max(range(full), key=lambda i: int(self.lengths[permuted[i]].max()), default=0)
        permuted.insert(0, permuted.pop(longest))
        return np.concatenate(permuted).astype(np.int64)
