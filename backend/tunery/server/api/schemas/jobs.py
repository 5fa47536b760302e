"""Request and response bodies of the jobs API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunery.server.db.models import JobKind, JobStatus


class JobCreate(BaseModel):
    """A job from a spec, in Tunery's nested form or LLaMA-Factory's flat keys (see ``JobSpec``)."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The job spec: nested sections or flat LLaMA-Factory keys.")
    project_id: str | None = Field(default=None, description="Project id or slug; default: your only project.")
    experiment_id: str | None = None
    name: str | None = Field(default=None, max_length=200)
    gpus: int | None = Field(default=None, ge=0, le=64, description="GPUs to hold; default 1 (0 with use_cpu).")


class JobDatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="The name the spec uses (``name`` or ``name@version``).")
    dataset_version_id: str


class JobSummary(BaseModel):
    """A job as lists show it (without its spec)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    experiment_id: str | None
    base_model_id: str | None
    parent_job_id: str | None
    created_by: str | None
    name: str | None
    kind: JobKind
    status: JobStatus
    cancel_requested: bool
    attempt: int
    max_attempts: int
    gpu_count: int
    progress: dict[str, Any]
    last_seq: int
    error_code: str | None
    error_message: str | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    best_checkpoint_step: int | None = Field(description="Training: the best checkpoint by metric_for_best_model.")
    stopped_early: bool = Field(description="Training: early stopping (early_stopping_steps) ended the run.")


class JobPublic(JobSummary):
    spec: dict[str, Any]
    resume_from: str | None
    gpus: list[Any]
    queue: str
    worker_id: str | None
    output_dir: str | None
    dataset_versions: list[JobDatasetPublic]


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as ``cursor`` for the next page; null on the last page.")


class LogLinePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    attempt: int
    line: str
    created_at: datetime


class LogPage(BaseModel):
    lines: list[LogLinePublic]
    next_after: int = Field(description="Pass as ``after`` to get the lines that follow.")


class MetricPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step: int
    attempt: int
    values: dict[str, Any]
    created_at: datetime


class MetricPage(BaseModel):
    items: list[MetricPublic]
    next_after_step: int = Field(description="Pass as ``after_step`` to get the steps that follow.")


class EventPage(BaseModel):
    events: list[dict[str, Any]] = Field(description="Events in ``seq`` order (job-level seq, type, attempt, ...).")
    next_after: int = Field(description="Pass as ``after`` to get the events that follow.")


class CheckpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    step: int
    path: str
    deleted: bool
    best: bool = Field(description="The job's best checkpoint by metric_for_best_model (kept by retention).")
    created_at: datetime


class ArtifactLink(BaseModel):
    url: str = Field(description="Path of a plain GET (no Authorization header) streaming the artifact; Range works.")
    expires_at: datetime


class ArtifactPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    size_bytes: int
    sha256: str | None = Field(description="Of a file; null for a folder (downloaded as a zip).")
    created_at: datetime
    format: str | None = Field(default=None, description="Exports: hf, gguf, onnx, gptq, modelfile or card.")
    quantization: str | None = Field(default=None, description="Exports: the GGUF type or GPTQ bits ('4bit').")
    serve_model_id: str | None = Field(default=None, description="The /v1 model id serving it, when servable.")
    checks: dict[str, float] = Field(
        default_factory=dict, description="Exports: verification figures (greedy_match, perplexity_ratio, ...)."
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Exports: serve_engine, path (relative to the job's output folder), lineage {source_job_id, "
        "checkpoint_step, adapters, base_model}.",
    )
