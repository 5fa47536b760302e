"""Token rows kept as flat numpy arrays (cheap to cache and slice), and the torch dataset over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt
from torch.utils.data import Dataset

IGNORE_INDEX = -100

IntArray = npt.NDArray[np.int32]
OffsetArray = npt.NDArray[np.int64]


def _flat(lists: Sequence[Sequence[int]]) -> IntArray:
    total = sum(len(item) for item in lists)
    return np.fromiter(chain.from_iterable(lists), dtype=np.int32, count=total)


@dataclass
class TokenRows:
    """``n`` rows of token ids and labels, concatenated; row ``i`` spans ``offsets[i]:offsets[i + 1]``.

    ``position_ids`` is set for packed rows: positions restart at 0 where each packed sequence begins.
    """

    input_ids: IntArray
    labels: IntArray
    offsets: OffsetArray
    position_ids: IntArray | None = None

    @classmethod
    def from_lists(
        cls,
        input_ids: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]],
        position_ids: Sequence[Sequence[int]] | None = None,
    ) -> TokenRows:
        lengths = np.fromiter((len(ids) for ids in input_ids), dtype=np.int64, count=len(input_ids))
        offsets = np.zeros(len(input_ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = _flat(position_ids) if position_ids is not None else None
        return cls(_flat(input_ids), _flat(labels), offsets, positions)

    @classmethod
    def empty(cls, packed: bool = False) -> TokenRows:
        none = np.zeros(0, dtype=np.int32)
        return cls(none, none.copy(), np.zeros(1, dtype=np.int64), none.copy() if packed else None)

    @classmethod
    def concat(cls, parts: Sequence[TokenRows]) -> TokenRows:
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        starts = np.cumsum([0] + [int(part.offsets[-1]) for part in parts[:-1]])
        shifted = [p.offsets[1:] + s for p, s in zip(parts, starts, strict=True)]
        offsets = np.concatenate([parts[0].offsets[:1], *shifted])
        positions = None
        if parts[0].position_ids is not None:
            positions = np.concatenate([p.position_ids for p in parts if p.position_ids is not None])
        return cls(
            np.concatenate([p.input_ids for p in parts]),
            np.concatenate([p.labels for p in parts]),
            offsets.astype(np.int64),
            positions,
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def arrays(self) -> dict[str, npt.NDArray[np.int32] | npt.NDArray[np.int64]]:
        """The arrays to store (the tokenized cache); ``from_arrays`` reads them back."""
        out: dict[str, npt.NDArray[np.int32] | npt.NDArray[np.int64]] = {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "offsets": self.offsets,
        }
        if self.position_ids is not None:
            out["position_ids"] = self.position_ids
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TokenRows:
        """Rows from :meth:`arrays`' output; ValueError when they disagree."""
        rows = cls(arrays["input_ids"], arrays["labels"], arrays["offsets"], arrays.get("position_ids"))
        if int(rows.offsets[-1]) != len(rows.input_ids) or len(rows.labels) != len(rows.input_ids):
            raise ValueError("token rows are inconsistent")
        return rows

    @property
    def lengths(self) -> OffsetArray:
        return np.diff(self.offsets)

    def row(self, index: int) -> dict[str, list[int]]:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        item = {
            "input_ids": self.input_ids[start:end].tolist(),
            "attention_mask": [1] * (end - start),
            "labels": self.labels[start:end].tolist(),
        }
        if self.position_ids is not None:
            item["position_ids"] = self.position_ids[start:end].tolist()
        return item


class TokenizedDataset(Dataset[dict[str, list[int]]]):
    """Map-style dataset of dicts (input_ids, attention_mask, labels[, position_ids]) as int lists."""

    def __init__(self, rows: TokenRows) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        if index < 0:
            index += len(self.rows)
        if not 0 <= index < len(self.rows):
            raise IndexError(f"row {index} out of range ({len(self.rows)} rows)")
        return self.rows.row(index)

    def __repr__(self) -> str:
        return f"TokenizedDataset(rows={len(self.rows)}, tokens={int(self.rows.offsets[-1])})"
