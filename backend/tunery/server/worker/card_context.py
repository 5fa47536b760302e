"""What the model card of an export says about where the model came from (``tunery export --card-context``):
the source job, its base model, the dataset versions it read (with content hashes), its last logged metrics
and the results of the eval jobs that evaluated it. Read from the database by the worker; every key is
always present (null, [] or {} when unknown)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.db.models import (
    Dataset,
    DatasetVersion,
    EvalResult,
    Job,
    JobDatasetVersion,
    JobKind,
    JobStatus,
    Metric,
    RegisteredModel,
)


def card_context(session: Session, job: Job) -> dict[str, Any]:
    record = dict(job.export or {})
    lineage = dict(record.get("lineage") or {})
    source = session.get(Job, lineage["source_job_id"]) if lineage.get("source_job_id") else None
    model = session.get(RegisteredModel, job.base_model_id) if job.base_model_id else None
    spec_model = job.spec.get("model", {})
    return {
        "export_job": {"id": job.id, "name": job.name},
        "model": record.get("model"),
        "adapters": list(record.get("extra_adapters") or []),
        "base_model": {
            "name": model.name if model is not None else lineage.get("base_model"),
            "path": model.path_or_hub_id if model is not None else spec_model.get("model_name_or_path"),
            "id": model.id if model is not None else None,
        },
        "source_job": _source(source, record) if source is not None else None,
        "checkpoint_step": lineage.get("checkpoint_step"),
        "datasets": _datasets(session, source.id) if source is not None else [],
        "final_metrics": _final_metrics(session, source.id) if source is not None else {},
        "eval_results": _eval_results(session, source) if source is not None else [],
    }


def _source(job: Job, record: dict[str, Any]) -> dict[str, Any]:
    method, data = job.spec.get("method", {}), job.spec.get("data", {})
    return {
        "id": job.id,
        "name": job.name,
        "stage": method.get("stage"),
        "finetuning_type": method.get("finetuning_type"),
        "template": data.get("template"),
        "model": record.get("model"),
    }


def _datasets(session: Session, job_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(JobDatasetVersion.name, Dataset.name, DatasetVersion.version, DatasetVersion.content_hash,
               DatasetVersion.rows_valid)
        .join(DatasetVersion, DatasetVersion.id == JobDatasetVersion.dataset_version_id)
        .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(JobDatasetVersion.job_id == job_id)
        .order_by(JobDatasetVersion.name)
    ).all()  # fmt: skip
    keys = ("name", "dataset", "version", "content_hash", "rows")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _final_metrics(session: Session, job_id: str) -> dict[str, float]:
    """The last logged value of each metric (training and eval figures come on different steps)."""
    final: dict[str, float] = {}
    for values in session.scalars(select(Metric.values).where(Metric.job_id == job_id).order_by(Metric.step)):
        final |= {key: value for key, value in values.items() if isinstance(value, int | float)}
    return final


def _eval_results(session: Session, source: Job) -> list[dict[str, Any]]:
    """Results of the succeeded eval jobs of the project that evaluated the source job's model or checkpoints."""
    from tunery.server.services.served_models import parse_fine_tune_id

    evals = session.scalars(
        select(Job)
        .where(Job.project_id == source.project_id, Job.kind == JobKind.EVAL, Job.status == JobStatus.SUCCEEDED)
        .order_by(Job.created_at)
    )
    out: list[dict[str, Any]] = []
    for job in evals:
        model = str((job.evaluation or {}).get("model") or "")
        parsed = parse_fine_tune_id(model)
        if parsed is None or parsed.job_id != source.id:
            continue
        for result in session.scalars(select(EvalResult).where(EvalResult.job_id == job.id).order_by(EvalResult.name)):
            out.append(
                {"job_id": job.id, "model": model, "name": result.name, "kind": result.kind, "metrics": result.metrics}
            )
    return out
