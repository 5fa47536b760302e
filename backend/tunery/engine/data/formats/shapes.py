"""What a training stage needs from each row (the example's shape)."""

from __future__ import annotations

from typing import Literal

from tunery.engine.data.api import DataError

#: pt: one text; sft: a conversation ending with the answer; unsupervised: the answer may be missing
#: (ppo); pairwise: prompt + [chosen, rejected] (rm, dpo); kto: an answer with a true/false label.
Shape = Literal["pt", "sft", "unsupervised", "pairwise", "kto"]
SHAPES: tuple[Shape, ...] = ("pt", "sft", "unsupervised", "pairwise", "kto")

STAGE_SHAPES: dict[str, Shape] = {
    "pt": "pt",
    "sft": "sft",
    "rm": "pairwise",
    "dpo": "pairwise",
    "ppo": "unsupervised",
    "kto": "kto",
}


def shape_for_stage(stage: str) -> Shape:
    try:
        return STAGE_SHAPES[stage]
    except KeyError:
        known = ", ".join(STAGE_SHAPES)
        raise DataError(f"stage '{stage}' is unknown; use one of: {known}") from None
