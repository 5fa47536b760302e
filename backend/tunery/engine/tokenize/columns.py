"""Rows of the preference and RL stages kept as named numpy columns (cheap to cache and slice), and the
map-style dataset over them.

Row kinds (contract 1 of the stage trainers, TRL's tokenized columns):

- ``pairwise`` (rm, dpo): ``{"prompt_ids", "chosen_ids", "rejected_ids"}``
- ``kto``: ``{"prompt_ids", "completion_ids", "label"}``
- ``prompt`` (ppo, grpo): ``{"prompt_ids", "prompt", "reference"}`` (``reference`` None when the row has none)

Besides its ragged columns, every row keeps ``source`` (index of the example it came from: rows dropped by
the cutoff leave gaps) and ``full_length`` (its length before the cutoff), for statistics and the preview.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from torch.utils.data import Dataset

from tunery.engine.tokenize.stats import TokenStats, length_histogram, summarize_lengths

RowKind = Literal["pairwise", "kto", "prompt"]

#: The ragged columns of each kind; ``*_ids`` hold token ids, the others UTF-8 text.
COLUMNS: dict[RowKind, tuple[str, ...]] = {
    "pairwise": ("prompt_ids", "chosen_ids", "rejected_ids"),
    "kto": ("prompt_ids", "completion_ids"),
    "prompt": ("prompt_ids", "prompt", "reference"),
}
#: The keys of each row dict a dataset yields.
ROW_KEYS: dict[RowKind, tuple[str, ...]] = {
    "pairwise": ("prompt_ids", "chosen_ids", "rejected_ids"),
    "kto": ("prompt_ids", "completion_ids", "label"),
    "prompt": ("prompt_ids", "prompt", "reference"),
}
#: One value per row: where it came from and its untruncated length, plus the kind's own flags.
PER_ROW: dict[RowKind, tuple[str, ...]] = {
    "pairwise": ("source", "full_length"),
    "kto": ("source", "full_length", "label"),
    "prompt": ("source", "full_length", "has_reference"),
}


@dataclass(frozen=True)
class Ragged:
    """``n`` variable-length items in one array: item ``i`` is ``values[offsets[i]:offsets[i + 1]]``
    (int32 token ids, or uint8 UTF-8 bytes for text)."""

    values: npt.NDArray[Any]
    offsets: npt.NDArray[np.int64]

    @classmethod
    def from_lists(cls, items: Sequence[Sequence[int]]) -> Ragged:
        lengths = np.fromiter(map(len, items), np.int64, len(items))
        values = np.fromiter(chain.from_iterable(items), np.int32, int(lengths.sum()))
        return cls(values, offsets_of(lengths))

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> Ragged:
        encoded = [text.encode("utf-8") for text in texts]
        values = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(values, offsets_of(np.fromiter(map(len, encoded), np.int64, len(encoded))))

    @classmethod
    def concat(cls, parts: Sequence[Ragged]) -> Ragged:
        if len(parts) == 1:
            return parts[0]
        shifts = np.cumsum([0] + [int(part.offsets[-1]) for part in parts[:-1]])
        shifted = [part.offsets[1:] + shift for part, shift in zip(parts, shifts, strict=True)]
        offsets = np.concatenate([parts[0].offsets[:1], *shifted])
        return cls(np.concatenate([part.values for part in parts]), offsets.astype(np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)

    def ids(self, index: int) -> list[int]:
        return self.values[int(self.offsets[index]) : int(self.offsets[index + 1])].tolist()  # type: ignore[no-any-return]

    def text(self, index: int) -> str:
        return bytes(self.values[int(self.offsets[index]) : int(self.offsets[index + 1])]).decode("utf-8")


def offsets_of(lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Offsets of items of ``lengths`` laid end to end: item ``i`` spans ``offsets[i]:offsets[i + 1]``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


@dataclass
class ColumnRows:
    """Rows of one kind (see the module doc): ragged columns plus one value per row."""

    kind: RowKind
    columns: dict[str, Ragged]
    per_row: dict[str, npt.NDArray[Any]]

    def __len__(self) -> int:
        return len(self.per_row["source"])

    def row(self, index: int) -> dict[str, Any]:
        columns = self.columns
        item: dict[str, Any] = {name: columns[name].ids(index) for name in COLUMNS[self.kind] if name.endswith("_ids")}
        if self.kind == "kto":
            item["label"] = bool(self.per_row["label"][index])
        elif self.kind == "prompt":
            item["prompt"] = columns["prompt"].text(index)
            item["reference"] = columns["reference"].text(index) if self.per_row["has_reference"][index] else None
        return item

    @property
    def prompt_lengths(self) -> npt.NDArray[np.int64]:
        return self.columns["prompt_ids"].lengths

    def answer_lengths(self) -> list[npt.NDArray[np.int64]]:
        """Token lengths of the trained answers (chosen and rejected; the completion; none for prompts)."""
        return [self.columns[name].lengths for name in COLUMNS[self.kind][1:] if name.endswith("_ids")]

    def sequence_lengths(self) -> npt.NDArray[np.int64]:
        """Prompt plus the longest answer: the longest sequence the row puts through the model."""
        answers = self.answer_lengths()
        longest = np.maximum.reduce(answers) if answers else np.zeros(len(self), np.int64)
        return self.prompt_lengths + longest

    def stats(self, examples: int, cutoff_len: int) -> TokenStats:
        """Statistics of ``examples`` encoded into these rows (the rest were dropped). ``tokens`` counts what
        the model reads: the prompt once per answer (a pair is two sequences)."""
        answers = self.answer_lengths()
        tokens = int(self.prompt_lengths.sum()) * max(len(answers), 1) + sum(int(a.sum()) for a in answers)
        lengths = self.sequence_lengths()
        return TokenStats(
            examples=examples,
            rows=len(self),
            tokens=tokens,
            trained_tokens=sum(int(a.sum()) for a in answers),
            truncated=int(np.count_nonzero(self.per_row["full_length"] > cutoff_len)),
            dropped=examples - len(self),
            cutoff_len=cutoff_len,
            lengths=summarize_lengths(lengths),
            histogram=length_histogram(lengths, cutoff_len),
        )

    # ----- storage (the tokenized cache) ------------------------------------------------------------
    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {}
        for name, ragged in self.columns.items():
            out[f"{name}.values"], out[f"{name}.offsets"] = ragged.values, ragged.offsets
        out.update(self.per_row)
        return out

    @classmethod
    def from_arrays(cls, kind: RowKind, arrays: Mapping[str, npt.NDArray[Any]]) -> ColumnRows:
        """Rows from :meth:`arrays`' output; ValueError when an array is missing or they disagree."""
        if kind not in COLUMNS:
            raise ValueError(f"unknown row kind {kind!r}")
        columns = {name: Ragged(arrays[f"{name}.values"], arrays[f"{name}.offsets"]) for name in COLUMNS[kind]}
        per_row = {name: arrays[name] for name in PER_ROW[kind]}
        count = len(per_row["source"])
        for name, ragged in columns.items():
            if len(ragged) != count or int(ragged.offsets[-1]) != len(ragged.values):
                raise ValueError(f"column {name} is inconsistent")
        if any(len(values) != count for values in per_row.values()):
            raise ValueError("per-row arrays disagree in length")
        return cls(kind, columns, per_row)

    @classmethod
    def concat(cls, kind: RowKind, parts: Sequence[ColumnRows], offsets: Sequence[int]) -> ColumnRows:
        """Chunks joined; ``offsets[i]``: index of chunk ``i``'s first example (shifts ``source``)."""
        if not parts:
            return empty_rows(kind)
        columns = {name: Ragged.concat([part.columns[name] for part in parts]) for name in COLUMNS[kind]}
        per_row = {name: np.concatenate([part.per_row[name] for part in parts]) for name in PER_ROW[kind]}
        per_row["source"] = np.concatenate(
            [part.per_row["source"] + shift for part, shift in zip(parts, offsets, strict=True)]
        )
        return cls(kind, columns, per_row)


def empty_rows(kind: RowKind) -> ColumnRows:
    columns = {
        name: Ragged(np.zeros(0, np.int32 if name.endswith("_ids") else np.uint8), np.zeros(1, np.int64))
        for name in COLUMNS[kind]
    }
    flags = {"label": np.zeros(0, bool), "has_reference": np.zeros(0, bool)}
    per_row = {name: flags.get(name, np.zeros(0, np.int64)) for name in PER_ROW[kind]}
    return ColumnRows(kind, columns, per_row)


class ColumnDataset(Dataset[dict[str, Any]]):
    """Map-style dataset of a :class:`ColumnRows` (one dict per row, ids as int lists)."""

    def __init__(self, rows: ColumnRows) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self.rows)
        if not 0 <= index < len(self.rows):
            raise IndexError(f"row {index} out of range ({len(self.rows)} rows)")
        return self.rows.row(index)

    def to_columns(self) -> dict[str, list[Any]]:
        """Every row as columns of lists (e.g. for ``datasets.Dataset.from_dict``)."""
        items = [self.rows.row(index) for index in range(len(self.rows))]
        return {name: [item[name] for item in items] for name in ROW_KEYS[self.rows.kind]}

    def __repr__(self) -> str:
        return f"ColumnDataset(kind={self.rows.kind}, rows={len(self.rows)})"
