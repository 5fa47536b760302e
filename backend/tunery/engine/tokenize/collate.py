"""Batch collators: padding (pad to the longest row) and packed (position_ids, no attention mask)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from tunery.engine.tokenize.rows import IGNORE_INDEX


def _round_up(length: int, multiple: int | None) -> int:
    if multiple and length % multiple:
        return length + multiple - length % multiple
    return length


def _tensor_rows(rows: Sequence[Sequence[int]], width: int, fill: int, left: bool = False) -> torch.Tensor:
    out = torch.full((len(rows), width), fill, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            values = torch.as_tensor(row, dtype=torch.long)
            if left:
                out[i, width - len(row) :] = values
            else:
                out[i, : len(row)] = values
    return out


@dataclass
class PaddingCollator:
    """Pads input_ids / attention_mask / labels (and position_ids if present) to the longest row."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    label_pad_id: int = IGNORE_INDEX
    padding_side: Literal["right", "left"] = "right"

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [list(f["input_ids"]) for f in features]
        width = _round_up(max((len(row) for row in ids), default=0), self.pad_to_multiple_of)
        left = self.padding_side == "left"
        batch = {
            "input_ids": _tensor_rows(ids, width, self.pad_token_id, left),
            "attention_mask": _tensor_rows([[1] * len(row) for row in ids], width, 0, left),
            "labels": _tensor_rows([list(f["labels"]) for f in features], width, self.label_pad_id, left),
        }
        if features and "position_ids" in features[0]:
            batch["position_ids"] = _tensor_rows([list(f["position_ids"]) for f in features], width, 0, left)
        return batch


@dataclass
class PackedCollator:
    """Batches packed rows for attention that keeps packed sequences apart.

    Gives ``position_ids`` (restarting at 0 per sequence) and no ``attention_mask``: transformers
    then derives a block-diagonal causal mask (sdpa, eager) or varlen boundaries (flash attention,
    which needs ``flatten=True``: the whole batch as one row). Padding is appended as a sequence of
    its own (positions 0..k-1, labels ``label_pad_id``), so it is never attended to by real tokens.
    ``use_cache=False`` is included: transformers only detects packing when no kv-cache is built.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    flatten: bool = False
    label_pad_id: int = IGNORE_INDEX

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ids = [list(f["input_ids"]) for f in features]
        labels = [list(f["labels"]) for f in features]
        positions = [
            list(f["position_ids"]) if "position_ids" in f else list(range(len(row)))
            for f, row in zip(features, ids, strict=True)
        ]
        if self.flatten:
            ids = [[token for row in ids for token in row]]
            labels = [[token for row in labels for token in row]]
            positions = [[pos for row in positions for pos in row]]
        width = _round_up(max((len(row) for row in ids), default=0), self.pad_to_multiple_of)
        for row_ids, row_labels, row_pos in zip(ids, labels, positions, strict=True):
            pad = width - len(row_ids)
            row_ids.extend([self.pad_token_id] * pad)
            row_labels.extend([self.label_pad_id] * pad)
            row_pos.extend(range(pad))
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "position_ids": torch.tensor(positions, dtype=torch.long),
            "use_cache": False,
        }
