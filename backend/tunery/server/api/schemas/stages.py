"""The training stage catalog as the API publishes it (``tunery.spec.stages.STAGE_CATALOG``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StagePublic(BaseModel):
    name: str = Field(description="the spec's stage value (method.stage)")
    title: str
    summary: str = Field(description="what the stage teaches, in one line")
    data: Literal["pt", "sft", "pairwise", "kto", "prompt"] = Field(description="the row shape the stage needs")
    data_help: str = Field(description="what the stage needs from the data, in one line")
    options: list[str] = Field(description="spec keys beyond the common ones that apply to this stage")
    metrics: list[str] = Field(description="metric names (or 'prefix/' groups) the stage reports besides the loss")
    reward_model: bool = Field(description="the result is a reward model, scored through /v1/score")
