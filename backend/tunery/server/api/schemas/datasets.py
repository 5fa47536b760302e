"""Datasets, versions, validation reports and previews."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, computed_field, field_validator

from tunery.server.api.schemas.base import Name, Public, Request
from tunery.server.services.datasets import stages_fed


class DatasetCreate(Request):
    name: Name = Field(description="the name jobs use in data.dataset (name@3 pins version 3)")
    description: str | None = Field(default=None, max_length=10_000)


class DatasetPublic(Public):
    id: str
    project_id: str
    name: str
    description: str | None
    created_at: datetime
    latest_version: int | None
    stages: list[str] = Field(description="stages the newest version can feed (empty without a version)")


class HubImportCreate(Request):
    hub: Literal["hf", "ms", "om"] = Field(
        default="hf", description="hf: Hugging Face Hub, ms: ModelScope Hub, om: Modelers Hub"
    )
    repo: str = Field(
        min_length=3, max_length=200, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", description="the dataset id, org/name"
    )
    subset: str | None = Field(default=None, max_length=200, description="the subset (configuration) name")
    split: str = Field(default="train", min_length=1, max_length=200, pattern=r"^[\w.\[\]:%-]+$")
    revision: str | None = Field(default=None, max_length=200, description="a branch, tag or commit")
    token_secret: str | None = Field(
        default=None, max_length=200, description="a project secret holding the hub access token (private datasets)"
    )
    entry: dict[str, Any] | None = Field(
        default=None, description="dataset_info.json settings for the rows: formatting, columns, tags, ranking"
    )
    stage: str | None = Field(default=None, description="stage the rows are checked for; default: from the entry")


class HubSourcePublic(Public):
    hub: str
    repo: str
    subset: str | None = None
    split: str
    revision: str | None = None
    token_secret: str | None = None


class ImportProgressPublic(Public):
    phase: str = Field(description="queued | downloading | writing | done | failed")
    bytes_done: int = 0
    rows_done: int = 0
    rows_total: int | None = None


class DatasetVersionPublic(Public):
    id: str
    dataset_id: str
    version: int
    content_hash: str
    size_bytes: int
    stage: str
    status: str = Field(description="pending | valid | invalid; a hub import: importing, then valid | invalid | failed")
    rows_total: int | None
    rows_valid: int | None
    info: dict[str, Any] = Field(description="its dataset_info.json entry")
    created_at: datetime
    source: HubSourcePublic | None = Field(default=None, description="the hub dataset it was imported from")
    progress: ImportProgressPublic | None = Field(default=None, description="how far its hub import got")

    @field_validator("progress", mode="before")
    @classmethod
    def _no_progress(cls, value: Any) -> Any:
        return value or None

    @computed_field(description="stages this version can feed (from the row shape it was checked for)")  # type: ignore[prop-decorator]
    @property
    def stages(self) -> list[str]:
        return stages_fed(self.stage)


class RowErrorPublic(Public):
    file: str
    row: int
    field: str
    message: str


class ReportPublic(Public):
    version: int
    status: str
    stage: str
    rows_total: int | None
    rows_valid: int | None
    error: str | None = Field(default=None, description="a problem with the whole dataset (no row read)")
    error_count: int
    warnings: list[str]
    errors: list[RowErrorPublic] = Field(description="row errors from offset (at most 1000 are kept)")
    offset: int
    validated_at: str | None


class PreviewSpan(Public):
    trained: bool
    text: str


class PreviewPart(Public):
    tokens: int
    text: str


class PreviewExample(Public):
    """One previewed row (``tunery.engine.tokenize.preview``); the preference and RL stages add their parts."""

    file: str | None
    row: int | None
    tokens: int
    trained_tokens: int
    truncated_from: int | None
    spans: list[PreviewSpan]
    prompt: PreviewPart | None = Field(default=None, description="pairwise, kto and prompt rows: the masked prompt")
    chosen: PreviewPart | None = Field(default=None, description="pairwise rows: the chosen answer (trained)")
    rejected: PreviewPart | None = Field(default=None, description="pairwise rows: the rejected answer (trained)")
    completion: PreviewPart | None = Field(default=None, description="kto rows: the answer (trained)")
    label: bool | None = Field(default=None, description="kto rows: true when the answer is desirable")
    reference: str | None = Field(default=None, description="prompt rows: the row's reference answer, if any")


class PreviewPublic(Public):
    examples: list[PreviewExample]
    stats: dict[str, Any]
