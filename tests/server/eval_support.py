"""Rows and files of the evaluation tests: a finished fine-tune with checkpoints, eval jobs with results and
their per-sample JSON lines, written straight to the database and the storage root."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunery.server.config import Settings
from tunery.server.db.models import Checkpoint, EvalResult, Job, JobKind, JobStatus
from tunery.server.db.session import Database


def fine_tune(
    database: Database, settings: Settings, project_id: str, base_model_id: str, steps: tuple[int, ...] = (2, 4)
) -> str:
    """A succeeded LoRA SFT job on the registered model ``base_model_id`` with an adapter in its output folder
    and one in each checkpoint (as a worker leaves them)."""
    with database.session() as session:
        job = Job(
            project_id=project_id,
            base_model_id=base_model_id,
            kind=JobKind.TRAIN,
            status=JobStatus.SUCCEEDED,
            spec={
                "model": {"model_name_or_path": "/models/tiny-llama"},
                "data": {"template": "llama3", "dataset": ["greetings"]},
                "method": {"stage": "sft", "finetuning_type": "lora"},
            },
            finished_at=datetime.now(UTC),
        )
        session.add(job)
        session.flush()
        job.output_dir = f"jobs/{job.id}/output"
        output = settings.storage_root / job.output_dir
        for folder in (output, *(output / f"checkpoint-{step}" for step in steps)):
            folder.mkdir(parents=True)
            (folder / "adapter_config.json").write_text("{}", encoding="utf-8")
        for step in steps:
            session.add(Checkpoint(job_id=job.id, step=step, path=f"{job.output_dir}/checkpoint-{step}"))
        session.commit()
        return job.id


def sample_rows(scores: list[dict[str, float]], **extra: Any) -> list[dict[str, Any]]:
    """Per-sample rows (the contract's names) with the given scores, one per entry."""
    return [
        {
            "index": index,
            "prompt": f"question {index}",
            "label": f"answer {index}",
            "predict": f"prediction {index}",
            "scores": score,
            **extra,
        }
        for index, score in enumerate(scores)
    ]


def eval_job(
    database: Database,
    settings: Settings,
    project_id: str,
    results: dict[str, list[dict[str, Any]]],
    *,
    kind: str = "predict",
    model: str = "tiny",
    status: JobStatus = JobStatus.SUCCEEDED,
) -> str:
    """A finished eval job with one result per entry of ``results`` (name -> per-sample rows), each written
    to ``<output>/<name>.jsonl``; ``generated_predictions.jsonl`` holds the first one."""
    with database.session() as session:
        job = Job(
            project_id=project_id,
            kind=JobKind.EVAL,
            status=status,
            spec={"model": {"model_name_or_path": "/models/tiny-llama"}, "training": {"do_train": False}},
            evaluation={"model": model, "kind": kind},
        )
        session.add(job)
        session.flush()
        job.output_dir = f"jobs/{job.id}/output"
        output = settings.storage_root / job.output_dir
        output.mkdir(parents=True)
        for position, (name, rows) in enumerate(results.items()):
            text = "".join(json.dumps(row) + "\n" for row in rows)
            file_name = "generated_predictions.jsonl" if position == 0 else f"{name}.jsonl"
            (output / file_name).write_text(text, encoding="utf-8")
            session.add(
                EvalResult(
                    job_id=job.id,
                    name=name,
                    kind=kind,
                    metrics={"rouge-l": 50.0},
                    breakdown={},
                    samples_file=f"{job.output_dir}/{file_name}",
                    samples=len(rows),
                )
            )
        session.commit()
        return job.id


def predictions_file(settings: Settings, job_id: str) -> Path:
    return settings.storage_root / "jobs" / job_id / "output" / "generated_predictions.jsonl"
