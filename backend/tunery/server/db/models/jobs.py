"""Experiments, jobs (the source of truth), their events, metrics, checkpoints and artifacts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tunery.server.db.base import Base, CreatedMixin, IdMixin, str_enum


class JobKind(enum.StrEnum):
    TRAIN = "train"
    EVAL = "eval"
    EXPORT = "export"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Experiment(IdMixin, CreatedMixin, Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class Job(IdMixin, CreatedMixin, Base):
    """A train / eval / export job. Workers claim it with a lease and keep it alive by heartbeats."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_project_created", "project_id", "created_at"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    experiment_id: Mapped[str | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"), index=True)
    base_model_id: Mapped[str | None] = mapped_column(ForeignKey("base_models.id", ondelete="SET NULL"), index=True)
    parent_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[JobKind] = mapped_column(str_enum(JobKind), default=JobKind.TRAIN)
    spec: Mapped[dict[str, Any]] = mapped_column()  # the validated JobSpec (nested form)
    status: Mapped[JobStatus] = mapped_column(str_enum(JobStatus), default=JobStatus.QUEUED, index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # 1 on the first run
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    resume_from: Mapped[str | None] = mapped_column(Text)  # checkpoint path for the next attempt
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    gpus: Mapped[list[Any]] = mapped_column(default=list)
    queue: Mapped[str] = mapped_column(String(32), default="gpu")
    output_dir: Mapped[str | None] = mapped_column(Text)  # relative to the storage root
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)  # last progress event, for lists
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # training: the best checkpoint by metric_for_best_model, and whether early stopping ended the run
    best_checkpoint_step: Mapped[int | None] = mapped_column(Integer)
    stopped_early: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # eval jobs: what was asked for (POST /api/projects/{id}/evaluations: model id, kind, datasets, ...)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column()
    # export jobs: what was asked for (POST /api/projects/{id}/exports: model id, adapters, source job, the
    # hub token's secret name; never the token)
    export: Mapped[dict[str, Any] | None] = mapped_column()

    dataset_versions: Mapped[list[JobDatasetVersion]] = relationship(cascade="all, delete-orphan")


class JobDatasetVersion(Base):
    """Lineage: which dataset versions a job read."""

    __tablename__ = "job_dataset_versions"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    dataset_version_id: Mapped[str] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="RESTRICT"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200))  # the name the spec uses for it


class JobEvent(CreatedMixin, Base):
    """An engine or platform event; ``seq`` is unique per job across attempts."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column()


class LogLine(CreatedMixin, Base):
    """A line the engine wrote to stderr."""

    __tablename__ = "job_log_lines"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer)
    line: Mapped[str] = mapped_column(Text)


class Metric(CreatedMixin, Base):
    """Training metrics at one step; unique per job and step, so a resumed attempt never doubles a step."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column()


class Checkpoint(IdMixin, CreatedMixin, Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)  # relative to the storage root
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)  # removed by save_total_limit
    best: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # one per job at most


class Artifact(IdMixin, CreatedMixin, Base):
    """A file or folder a job produced (adapter, model, tokenizer, plot, results, or an export's outputs)."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # adapter | model | tokenizer | plot | results | log
    path: Mapped[str] = mapped_column(Text)  # relative to the storage root
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # exports (tunery.spec.events.ArtifactEvent): hf | gguf | onnx | gptq | modelfile | card, the GGUF type or
    # GPTQ bits, and details: checks, serve_engine, lineage {source_job_id, checkpoint_step, adapters, base_model}
    format: Mapped[str | None] = mapped_column(String(16))
    quantization: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))


class EvalResult(IdMixin, CreatedMixin, Base):
    """One evaluation of an eval job (a prediction run over a dataset, a benchmark, a judge pass)."""

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # predict | benchmark | judge
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    breakdown: Mapped[dict[str, Any]] = mapped_column(default=dict)
    samples_file: Mapped[str | None] = mapped_column(Text)  # per-sample JSON lines, relative to the storage root
    samples: Mapped[int] = mapped_column(Integer, default=0)
