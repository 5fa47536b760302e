"""What a training stage needs from each row (the example's shape)."""

from __future__ import annotations

from typing import Literal

from tunery.engine.data.api import DataError
from tunery.spec.stages import STAGE_SHAPES as CATALOG_SHAPES
from tunery.spec.stages import stages_fed_by

#: pt: one text; sft: a conversation ending with the answer; unsupervised: the answer may be missing
#: (ppo, grpo); pairwise: prompt + [chosen, rejected] (rm, dpo); kto: an answer with a true/false label.
Shape = Literal["pt", "sft", "unsupervised", "pairwise", "kto"]
SHAPES: tuple[Shape, ...] = ("pt", "sft", "unsupervised", "pairwise", "kto")

#: Derived from the stage catalog; its "prompt" shape is LLaMA-Factory's "unsupervised" (answer optional).
STAGE_SHAPES: dict[str, Shape] = {
    name: "unsupervised" if shape == "prompt" else shape for name, shape in CATALOG_SHAPES.items()
}


def shape_for_stage(stage: str) -> Shape:
    try:
        return STAGE_SHAPES[stage]
    except KeyError:
        known = ", ".join(STAGE_SHAPES)
        raise DataError(f"stage '{stage}' is unknown; use one of: {known}") from None


def stages_for_dataset(ranking: bool, kto_tag: bool) -> list[str]:
    """Stages a dataset can feed (the spec's rule): pairs, KTO-tagged answers, or conversations."""
    return stages_fed_by("pairwise" if ranking else "kto" if kto_tag else "sft")
