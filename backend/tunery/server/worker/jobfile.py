"""The job file the engine reads: ``<storage>/jobs/<id>/job.yaml``, outputs in ``jobs/<id>/output``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunery.server.storage import safe_join
from tunery.spec import JobSpec


@dataclass(frozen=True)
class JobFiles:
    folder: Path
    job_file: Path
    output_dir: Path


def job_files(storage_root: Path, job_id: str) -> JobFiles:
    folder = safe_join(storage_root, "jobs", job_id)
    return JobFiles(folder, folder / "job.yaml", folder / "output")


def resolve_stored_path(storage_root: Path, stored: str) -> Path:
    """A path kept in the DB: relative to the storage root (absolute ones are used as they are)."""
    path = Path(stored)
    return path if path.is_absolute() else safe_join(storage_root, stored)


def write_job_file(storage_root: Path, job_id: str, spec: dict[str, Any], resume_from: str | None) -> JobFiles:
    """Validate the stored spec, point it at the job's output folder, and write it (atomically).

    A fresh attempt starts over in the output folder; a resumed one continues from ``resume_from``.
    Raises ``tunery.spec.SpecError`` when the stored spec is no longer valid.
    """
    files = job_files(storage_root, job_id)
    parsed = JobSpec.from_mapping(spec, source=f"job {job_id}")
    parsed.training.output_dir = str(files.output_dir)
    if parsed.export.export_dir is not None:  # an export writes into the output folder
        parsed.export.export_dir = str(files.output_dir)
    if resume_from:
        parsed.training.resume_from_checkpoint = str(resolve_stored_path(storage_root, resume_from))
        parsed.training.overwrite_output_dir = False
    else:
        parsed.training.resume_from_checkpoint = None
        parsed.training.overwrite_output_dir = True
    files.folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(parsed.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True)
    partial = files.job_file.with_suffix(".yaml.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, files.job_file)
    return files
