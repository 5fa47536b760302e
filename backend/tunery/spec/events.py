"""Typed events the engine emits (one JSON object per line). Part of the spec so the API can publish them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

#: Process exit codes of ``tunery train``.
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_CANCELLED = 3


def _now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(description="Sequence number, 1-based, strictly increasing within one run.")
    time: datetime = Field(default_factory=_now)


class StartedEvent(_Event):
    type: Literal["started"] = "started"
    stage: str
    finetuning_type: str
    total_steps: int
    num_train_examples: int | None
    num_eval_examples: int | None
    trainable_params: int
    total_params: int
    resumed_from: str | None = None
    device: str


class ProgressEvent(_Event):
    type: Literal["progress"] = "progress"
    step: int
    total_steps: int
    epoch: float
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_second: float | None = None
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="The stage's own training metrics at this step (e.g. rewards/accuracies, kl, reward).",
    )
    elapsed_seconds: float
    eta_seconds: float | None = None


class EvalEvent(_Event):
    type: Literal["eval"] = "eval"
    step: int
    epoch: float
    metrics: dict[str, float]


class CheckpointEvent(_Event):
    type: Literal["checkpoint"] = "checkpoint"
    step: int
    path: str


class LogEvent(_Event):
    type: Literal["log"] = "log"
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str


class FinishedEvent(_Event):
    type: Literal["finished"] = "finished"
    outcome: Literal["succeeded", "cancelled"]
    step: int
    metrics: dict[str, Any] = Field(default_factory=dict)
    output_dir: str
    checkpoint: str | None = Field(default=None, description="Newest checkpoint (set when cancelled).")


class FailedEvent(_Event):
    type: Literal["failed"] = "failed"
    code: str = Field(description="Stable error code, e.g. invalid_spec, invalid_data, out_of_memory.")
    message: str


Event = Annotated[
    StartedEvent | ProgressEvent | EvalEvent | CheckpointEvent | LogEvent | FinishedEvent | FailedEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(line: str) -> Event:
    """Parse one JSON line of the stream back into its typed event."""
    return EVENT_ADAPTER.validate_json(line)
