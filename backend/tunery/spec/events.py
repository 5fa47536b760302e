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


class BestCheckpointEvent(_Event):
    """A checkpoint became the best so far by ``metric_for_best_model`` (kept by save_total_limit)."""

    type: Literal["best_checkpoint"] = "best_checkpoint"
    step: int
    path: str
    metric: str = Field(description="The metric compared, e.g. eval_loss.")
    value: float


class EvalResultEvent(_Event):
    """Results of one evaluation of an eval job (a prediction run, a benchmark, a judge pass)."""

    type: Literal["eval_result"] = "eval_result"
    name: str = Field(description="What was evaluated: the eval dataset name, the benchmark task, 'judge'.")
    kind: Literal["predict", "benchmark", "judge"]
    metrics: dict[str, float] = Field(description="Figures by metric name (see tunery.spec.eval_metrics).")
    breakdown: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Benchmarks: accuracy per 'subject' and per 'category' ({group: {name: accuracy}}).",
    )
    samples_file: str | None = Field(
        default=None, description="Per-sample JSON-lines file, relative to the job's output_dir."
    )
    samples: int = Field(default=0, description="Rows in samples_file.")


class ArtifactEvent(_Event):
    """A file (or folder) an export wrote, complete and verified: the server registers exactly these."""

    type: Literal["artifact"] = "artifact"
    name: str = Field(description="Display name, unique in the run: 'model', 'gguf-Q4_K_M', 'onnx', 'Modelfile'.")
    format: Literal["hf", "gguf", "onnx", "gptq", "modelfile", "card"]
    quantization: str | None = Field(default=None, description="GGUF type (F16, Q4_K_M) or GPTQ bits ('4bit').")
    path: str = Field(description="Relative to output_dir; '.' for the merged model at its top level.")
    size_bytes: int
    serve_engine: str | None = Field(default=None, description="Serving engine for it (hf, gguf); None: not served.")
    checks: dict[str, float] = Field(
        default_factory=dict,
        description="Verification figures: greedy_match (share of greedy tokens equal to the merged model's), "
        "perplexity, perplexity_ratio (vs the merged model), max_logit_diff.",
    )


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
    best_checkpoint: str | None = Field(default=None, description="Best checkpoint by metric_for_best_model.")
    stopped_early: bool = Field(default=False, description="Early stopping (early_stopping_steps) ended training.")


class FailedEvent(_Event):
    type: Literal["failed"] = "failed"
    code: str = Field(description="Stable error code, e.g. invalid_spec, invalid_data, out_of_memory.")
    message: str


Event = Annotated[
    StartedEvent
    | ProgressEvent
    | EvalEvent
    | CheckpointEvent
    | BestCheckpointEvent
    | EvalResultEvent
    | ArtifactEvent
    | LogEvent
    | FinishedEvent
    | FailedEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(line: str) -> Event:
    """Parse one JSON line of the stream back into its typed event."""
    return EVENT_ADAPTER.validate_json(line)
