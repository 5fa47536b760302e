"""Registered base models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, computed_field

from tunery.server.api.schemas.base import Name, Public, Request
from tunery.server.services.model_inspect import is_reward_architecture


class BaseModelCreate(Request):
    name: Name
    path_or_hub_id: str = Field(min_length=1, max_length=1000, description="a hub id, or a folder on the server")
    architecture: str | None = Field(
        default=None,
        max_length=100,
        description="default: from config.json; *ForSequenceClassification: a reward model",
    )
    num_parameters: int | None = Field(default=None, ge=0)
    template: str | None = Field(default=None, max_length=100, description="chat template; default: a guess")


class BaseModelUpdate(Request):
    template: str | None = Field(default=None, max_length=100)


class BaseModelPublic(Public):
    id: str
    project_id: str | None = Field(description="none: shared with every project")
    name: str
    path_or_hub_id: str
    architecture: str | None
    num_parameters: int | None
    template: str | None
    details: dict[str, Any]
    created_at: datetime

    @computed_field(description="a sequence-classification model: scored through /v1/score, not chatted with")  # type: ignore[prop-decorator]
    @property
    def reward_model(self) -> bool:
        return is_reward_architecture(self.architecture)
