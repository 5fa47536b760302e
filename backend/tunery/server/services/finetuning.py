"""OpenAI fine-tuning jobs as views over Tunery's jobs: creation builds a job spec and calls the jobs
service; reads turn job rows, events, metrics and checkpoints into OpenAI's objects.

Methods: ``supervised`` (stage sft, chat files) and ``dpo`` (stage dpo, preference files); others are refused.
Hyperparameters: ``n_epochs`` (auto: 3), ``batch_size`` (auto: rows/100 between 1 and 8),
``learning_rate_multiplier`` (auto: 1; times a LoRA base rate of 1e-4), for dpo ``beta`` (auto: 0.1, the
spec's pref_beta). Training is LoRA on all linear
layers, saved at every epoch (each epoch a checkpoint model). Jobs run on CPU when no worker has a GPU.
Suffix and metadata are kept next to the job (``jobs/<id>/openai.json``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tunery.server.config import Settings
from tunery.server.db.models import Checkpoint, Gpu, Job, JobEvent, JobKind, JobStatus, Metric, Project
from tunery.server.errors import InvalidError, NotFoundError
from tunery.server.services import jobs, served_models
from tunery.server.services.datasets import stages_fed
from tunery.server.services.job_inputs import resolve_model
from tunery.server.services.job_listing import JobFilter, encode_cursor, list_jobs
from tunery.server.services.openai_files import find_file

JOB_PREFIX = "ftjob-"
EVENT_PREFIX = "ftevent-"
CHECKPOINT_PREFIX = "ftckpt-"
BASE_LEARNING_RATE = 1e-4
SIDECAR = "openai.json"
#: platform status events in OpenAI's words
STATUS_MESSAGES = {
    "succeeded": "The job has successfully completed",
    "cancelled": "The job was cancelled",
    "failed": "The job failed",
}


class Hyperparameters(BaseModel):
    """Method ``supervised``'s hyperparameters (OpenAI's names)."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: int | str = Field(default="auto")
    batch_size: int | str = Field(default="auto")
    learning_rate_multiplier: float | str = Field(default="auto")


class DpoHyperparameters(Hyperparameters):
    """Method ``dpo``'s: the supervised ones and ``beta`` (the spec's pref_beta)."""

    beta: float | str = Field(default="auto")


#: OpenAI's method types -> (the Tunery stage they train, their hyperparameters)
METHODS: dict[str, tuple[str, type[Hyperparameters]]] = {
    "supervised": ("sft", Hyperparameters),
    "dpo": ("dpo", DpoHyperparameters),
}
#: how a job of each stage shows in OpenAI's objects: its method type, else the stage's own name
STAGE_METHODS = {stage: kind for kind, (stage, _) in METHODS.items()}
#: what each method needs in its files, for errors
FILE_KINDS = {
    "supervised": "a chat file (lines with 'messages')",
    "dpo": "a preference file (lines with 'input', 'preferred_output' and 'non_preferred_output')",
}


class FineTuneCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = Field(default=None, description="deprecated: use method")
    method: dict[str, Any] | None = None
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None


def job_id_of(public_id: str) -> str:
    return public_id[len(JOB_PREFIX) :] if public_id.startswith(JOB_PREFIX) else public_id


def _auto(value: Any, name: str, default: float, minimum: float, maximum: float) -> float:
    if value in (None, "auto"):
        return default
    if isinstance(value, str):
        raise InvalidError(f"hyperparameters.{name} must be 'auto' or a number")
    if not minimum <= float(value) <= maximum:
        raise InvalidError(f"hyperparameters.{name} must be between {minimum:g} and {maximum:g}")
    return float(value)


def method_of(body: FineTuneCreate) -> tuple[str, Hyperparameters]:
    """(method type, hyperparameters) from ``method`` or the legacy top-level ``hyperparameters``."""
    method = body.method or {"type": "supervised"}
    kind = method.get("type", "supervised")
    if kind not in METHODS:
        raise InvalidError(
            f"method.type {kind!r} is not supported; use one of: {', '.join(METHODS)}",
            {"param": "method.type", "code": "invalid_value"},
        )
    unknown = sorted(set(method) - {"type", kind})
    if unknown:
        raise InvalidError(f"method.{unknown[0]} does not apply to method {kind!r}", {"param": f"method.{unknown[0]}"})
    raw = (method.get(kind) or {}).get("hyperparameters") or {}
    if body.hyperparameters is not None and not raw:
        raw = body.hyperparameters
    try:
        return kind, METHODS[kind][1].model_validate(raw)
    except ValueError as exc:
        raise InvalidError(f"hyperparameters of method {kind}: {exc}", {"param": "hyperparameters"}) from exc


def _use_cpu(session: Session) -> bool:
    """Train on CPU when no worker has registered a GPU."""
    return not session.scalar(select(func.count(Gpu.id)))


def build_spec(session: Session, project_id: str, body: FineTuneCreate) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat job spec, resolved hyperparameters)."""
    if body.integrations:
        raise InvalidError("integrations are not supported")
    if served_models.parse_fine_tune_id(body.model) is not None:
        raise InvalidError("fine-tuning a fine-tuned model is not supported yet; name a registered base model")
    if resolve_model(session, project_id, body.model) is None:
        raise InvalidError(f"model '{body.model}' is not a base model registered in this project")
    kind, hyper = method_of(body)
    stage = METHODS[kind][0]
    training = find_file(session, [project_id], body.training_file)
    for name, file_id in (("training_file", body.training_file), ("validation_file", body.validation_file)):
        if file_id is not None:
            version = find_file(session, [project_id], file_id)
            if stage not in stages_fed(version.stage):
                raise InvalidError(
                    f"{name} {file_id} cannot be used with method {kind}, which needs {FILE_KINDS[kind]}",
                    {"param": name},
                )
    rows = training.rows_valid or 1
    epochs = int(_auto(hyper.n_epochs, "n_epochs", 3, 1, 50))
    batch = int(_auto(hyper.batch_size, "batch_size", min(8, max(1, rows // 100)), 1, 256))
    multiplier = _auto(hyper.learning_rate_multiplier, "learning_rate_multiplier", 1.0, 1e-6, 100)
    steps = epochs * math.ceil(rows / batch)
    spec: dict[str, Any] = {
        "model_name_or_path": body.model,
        "dataset": body.training_file,
        "stage": stage,
        "finetuning_type": "lora",
        "lora_target": "all",
        "num_train_epochs": epochs,
        "per_device_train_batch_size": batch,
        "learning_rate": BASE_LEARNING_RATE * multiplier,
        "logging_steps": max(1, steps // 100),
        "save_strategy": "epoch",
        "output_dir": "unused",
        "use_cpu": _use_cpu(session),
    }
    if body.seed is not None:
        spec["seed"] = body.seed
    if body.validation_file:
        spec |= {"eval_dataset": body.validation_file, "eval_strategy": "epoch", "per_device_eval_batch_size": batch}
    resolved: dict[str, Any] = {"n_epochs": epochs, "batch_size": batch, "learning_rate_multiplier": multiplier}
    if isinstance(hyper, DpoHyperparameters):
        resolved["beta"] = _auto(hyper.beta, "beta", 0.1, 1e-6, 10)
        spec["pref_beta"] = resolved["beta"]
    return spec, {"type": kind, kind: {"hyperparameters": resolved}}


def create(session: Session, settings: Settings, project_id: str, user_id: str, body: FineTuneCreate) -> Job:
    spec, method = build_spec(session, project_id, body)
    new = jobs.NewJob(project_id, spec, name=body.suffix, created_by=user_id, gpus=0 if spec["use_cpu"] else None)
    outcome = jobs.create_job(session, settings, new)
    sidecar = {
        "suffix": body.suffix,
        "metadata": body.metadata,
        "method": method,
        "training_file": body.training_file,
        "validation_file": body.validation_file,
        "seed": body.seed,
    }
    (jobs.job_folder(settings, outcome.job.id) / SIDECAR).write_text(json.dumps(sidecar), encoding="utf-8")
    jobs.commit(session, settings, outcome)
    return outcome.job


def visible(session: Session, project_ids: list[str], public_id: str) -> Job:
    job = session.get(Job, job_id_of(public_id))
    if job is None or job.project_id not in project_ids or job.kind != JobKind.TRAIN:
        raise NotFoundError(f"fine-tuning job {public_id} not found")
    return job


def _sidecar(settings: Settings, job: Job) -> dict[str, Any]:
    path = jobs.job_folder(settings, job.id) / SIDECAR
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def job_object(session: Session, settings: Settings, job: Job) -> dict[str, Any]:
    spec, extra = job.spec, _sidecar(settings, job)
    training = spec.get("training", {})
    datasets = spec.get("data", {}).get("dataset") or []
    evaluation = spec.get("data", {}).get("eval_dataset") or []
    method = spec.get("method", {})
    stage = method.get("stage", "sft")
    kind = STAGE_METHODS.get(stage, stage)
    hyper = {
        "n_epochs": _number(training.get("num_train_epochs", 3)),
        "batch_size": int(training.get("per_device_train_batch_size", 1))
        * int(training.get("gradient_accumulation_steps", 1)),
        "learning_rate_multiplier": _number(
            float(training.get("learning_rate", BASE_LEARNING_RATE)) / BASE_LEARNING_RATE
        ),
    }
    if stage == "dpo":
        hyper["beta"] = _number(method.get("pref_beta", 0.1))
    project = session.get(Project, job.project_id)
    fine_tuned = None
    if job.status == JobStatus.SUCCEEDED and project is not None:
        fine_tuned = str(served_models.FineTuneId(served_models.base_name(session, job), project.slug, job.id))
    error = None
    if job.status == JobStatus.FAILED:
        error = {"code": job.error_code or "failed", "message": job.error_message or "the job failed", "param": None}
    return {
        "object": "fine_tuning.job",
        "id": f"{JOB_PREFIX}{job.id}",
        "model": served_models.base_name(session, job),
        "created_at": _seconds(job.created_at),
        "finished_at": _seconds(job.finished_at),
        "fine_tuned_model": fine_tuned,
        "organization_id": job.project_id,
        "result_files": [],
        "status": job.status.value,
        "validation_file": evaluation[0] if evaluation else None,
        "training_file": datasets[0] if datasets else "",
        "hyperparameters": hyper,
        "trained_tokens": None,
        "error": error,
        "seed": int(training.get("seed", 42)),
        "estimated_finish": None,
        "integrations": [],
        "metadata": extra.get("metadata"),
        "method": extra.get("method") or {"type": kind, kind: {"hyperparameters": hyper}},
        "user_provided_suffix": extra.get("suffix"),
    }


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def list_page(session: Session, project_ids: list[str], after: str | None, limit: int) -> tuple[list[Job], bool]:
    cursor = encode_cursor(visible(session, project_ids, after)) if after else None
    rows, next_cursor = list_jobs(session, JobFilter(project_ids), cursor, limit)
    return [row for row in rows if row.kind == JobKind.TRAIN], next_cursor is not None


# ----- events ---------------------------------------------------------------------------------------------
def event_message(event: JobEvent) -> tuple[str, str, dict[str, Any] | None, str]:
    """(level, message, data, type) of a job event in OpenAI's terms."""
    payload = event.payload
    kind = event.type
    if kind == "progress":
        data = {
            "step": payload.get("step"),
            "train_loss": payload.get("loss"),
            "total_steps": payload.get("total_steps"),
            **payload.get("metrics", {}),  # the stage's own: rewards/accuracies, ...
        }
        loss = f", train loss {payload['loss']:.4f}" if isinstance(payload.get("loss"), (int, float)) else ""
        return "info", f"Step {payload.get('step')}/{payload.get('total_steps')}{loss}", data, "metrics"
    if kind == "eval":
        data = {"step": payload.get("step"), **payload.get("metrics", {})}
        return "info", f"Evaluation at step {payload.get('step')}", data, "metrics"
    if kind == "checkpoint":
        return "info", f"Checkpoint created at step {payload.get('step')}", None, "message"
    if kind == "started":
        return (
            "info",
            f"Fine-tuning job started ({payload.get('total_steps')} steps on {payload.get('device')})",
            None,
            "message",
        )
    if kind == "finished":
        return "info", f"Training {payload.get('outcome')} at step {payload.get('step')}", None, "message"
    if kind == "failed":
        return "error", f"The job failed: {payload.get('message')}", {"code": payload.get("code")}, "message"
    if kind == "log":
        level = payload.get("level", "info")
        return ("warn" if level == "warning" else level), str(payload.get("message", "")), None, "message"
    status = payload.get("status")
    if kind == "status" and status in STATUS_MESSAGES:
        detail = f": {payload['message']}" if status == "failed" and payload.get("message") else ""
        return ("error" if status == "failed" else "info"), STATUS_MESSAGES[status] + detail, None, "message"
    return "info", str(payload.get("message") or status or kind), None, "message"


def event_objects(session: Session, job: Job, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Newest first; ``after`` is an event id from an earlier page."""
    query = select(JobEvent).where(JobEvent.job_id == job.id)
    if after:
        try:
            seq = int(after[len(EVENT_PREFIX) :].split("-", 1)[0])
        except ValueError as exc:
            raise InvalidError("after is not an event id this API returned") from exc
        query = query.where(JobEvent.seq < seq)
    rows = list(session.scalars(query.order_by(JobEvent.seq.desc()).limit(limit + 1)))
    objects = []
    for row in rows[:limit]:
        level, message, data, kind = event_message(row)
        objects.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"{EVENT_PREFIX}{row.seq}-{job.id}",
                "created_at": _seconds(row.created_at),
                "level": level,
                "message": message,
                "data": data,
                "type": kind,
            }
        )
    return objects, len(rows) > limit


# ----- checkpoints ----------------------------------------------------------------------------------------
def checkpoint_objects(
    session: Session, settings: Settings, job: Job, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first; ``after`` is a checkpoint id from an earlier page."""
    project = session.get(Project, job.project_id)
    assert project is not None
    query = select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.deleted.is_(False))
    if after:
        anchor = session.get(Checkpoint, after[len(CHECKPOINT_PREFIX) :])
        if anchor is None or anchor.job_id != job.id:
            raise InvalidError("after is not a checkpoint id of this job")
        query = query.where(Checkpoint.step < anchor.step)
    rows = list(session.scalars(query.order_by(Checkpoint.step.desc()).limit(limit + 1)))
    steps = [checkpoint.step for checkpoint in rows]
    metrics = {
        row.step: row.values
        for row in session.scalars(select(Metric).where(Metric.job_id == job.id, Metric.step.in_(steps)))
    }
    base = served_models.base_name(session, job)
    objects = []
    for row in rows[:limit]:
        values = dict(metrics.get(row.step, {}))
        loss = values.pop("loss", values.get("train_loss"))
        objects.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"{CHECKPOINT_PREFIX}{row.id}",
                "created_at": _seconds(row.created_at),
                "fine_tuned_model_checkpoint": str(served_models.FineTuneId(base, project.slug, job.id, row.step)),
                "fine_tuning_job_id": f"{JOB_PREFIX}{job.id}",
                "metrics": {"step": row.step, **values, "train_loss": loss},
                "step_number": row.step,
            }
        )
    return objects, len(rows) > limit
