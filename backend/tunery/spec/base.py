"""Shared pieces of the job spec sections."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A group of spec fields; unknown keys are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def split_csv(value: Any) -> Any:
    """LLaMA-Factory writes lists as comma-separated strings ("a,b"); accept both forms."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        return [item for item in items if item]
    return value
