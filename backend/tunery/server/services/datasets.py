"""Datasets and their immutable versions: files under ``datasets/<dataset id>/v<n>``, next to a
dataset_info.json whose single entry is named like the dataset; a validation report per version.

``validate_dataset_version(session, storage_root, version_id)`` is what a worker task calls.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tunery.server.db.models import Dataset, DatasetVersion, JobDatasetVersion
from tunery.server.errors import ConflictError, NotFoundError
from tunery.server.services.dataset_files import INFO_FILE, content_hash, resolve_entry
from tunery.server.storage import Storage
from tunery.server.uploads import StagedUpload
from tunery.spec.stages import STAGE_NAMES, STAGE_SHAPES, DataShape, stages_fed_by, stages_for_shape

#: row errors kept in a stored report (all are counted)
MAX_STORED_ERRORS = 1000
STAGES: tuple[str, ...] = STAGE_NAMES


def create_dataset(session: Session, project_id: str, name: str, description: str | None) -> Dataset:
    if session.scalar(select(Dataset.id).where(Dataset.project_id == project_id, Dataset.name == name)):
        raise ConflictError(f"a dataset named '{name}' already exists in this project")
    dataset = Dataset(project_id=project_id, name=name, description=description)
    session.add(dataset)
    session.flush()
    return dataset


def get_version(session: Session, dataset: Dataset, number: int) -> DatasetVersion:
    version = session.scalar(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == number)
    )
    if version is None:
        raise NotFoundError(f"dataset '{dataset.name}' has no version {number}")
    return version


def entry_shape(entry: dict[str, Any]) -> DataShape:
    """The row shape a dataset_info entry declares: ranked pairs, KTO-tagged answers, else conversations."""
    columns = entry.get("columns") if isinstance(entry.get("columns"), dict) else {}
    if entry.get("ranking") is True:
        return "pairwise"
    return "kto" if columns and "kto_tag" in columns else "sft"


def default_stage(entry: dict[str, Any]) -> str:
    """The stage rows are checked for when the upload names none: the first stage of the entry's shape."""
    return stages_for_shape(entry_shape(entry))[0]


def stages_fed(stage: str) -> list[str]:
    """Stages a version checked for ``stage`` can feed (the spec's one rule, by the rows' shape)."""
    return stages_fed_by(STAGE_SHAPES.get(stage, "sft"))


def next_number(session: Session, dataset: Dataset) -> int:
    """The number of the dataset's next version (the dataset row stays locked until the commit)."""
    # lock the dataset row so concurrent uploads number their versions one after the other
    locked = session.execute(
        select(Dataset.next_version).where(Dataset.id == dataset.id).with_for_update()
    ).scalar_one()
    newest = session.scalar(select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == dataset.id))
    number = max(locked, (newest or 0) + 1)
    dataset.next_version = number + 1
    return number


def add_version(
    session: Session, storage: Storage, dataset: Dataset, upload: StagedUpload, stage: str | None = None
) -> DatasetVersion:
    """Publish the staged files as the next version (flushed, not committed; see ``commit_version``)."""
    entry = resolve_entry(upload)
    stage = stage or default_stage(entry)
    assert upload.folder is not None
    digest = content_hash(entry, upload)
    (upload.folder / INFO_FILE).unlink(missing_ok=True)
    (upload.folder / INFO_FILE).write_text(json.dumps({dataset.name: entry}, indent=2), encoding="utf-8")
    number = next_number(session, dataset)
    target = storage.publish(upload.folder, "datasets", dataset.id, f"v{number}")
    version = DatasetVersion(
        dataset_id=dataset.id,
        version=number,
        content_hash=digest,
        storage_path=storage.relative(target),
        info=entry,
        size_bytes=upload.size,
        stage=stage,
        status="pending",
        report={},
    )
    session.add(version)
    try:
        session.flush()
    except BaseException:
        storage.remove(target)
        raise
    return version


def commit_version(session: Session, storage: Storage, version: DatasetVersion) -> None:
    """Commit; if that fails the published files are removed, so no folder is left without its row."""
    try:
        session.commit()
    except BaseException:
        storage.remove(storage.root / version.storage_path)
        raise


def _relative_file(path: str, folder: Path) -> str:
    real = os.path.normpath(os.path.join(folder, path))
    base = os.path.normpath(folder)
    return os.path.relpath(real, base) if real.startswith(base + os.sep) else os.path.basename(path)


def run_validation(storage_root: Path, version: DatasetVersion, dataset_name: str) -> None:
    """Validate every row for the version's stage and store the report on the row (not committed)."""
    from tunery.engine.data.api import DataError
    from tunery.engine.data.load import validate_datasets
    from tunery.spec.data import DataSection

    folder = storage_root / version.storage_path
    data = DataSection(dataset=[dataset_name], dataset_dir=str(folder))
    report: dict[str, Any] = {"stage": version.stage, "validated_at": datetime.now(UTC).isoformat()}
    try:
        result = validate_datasets(data, version.stage, max_errors=MAX_STORED_ERRORS)
    except DataError as exc:
        errors = exc.errors
        report |= {"error": str(exc).replace(str(folder) + os.sep, ""), "rows_total": 0, "rows_valid": 0}
        report |= {"error_count": len(errors), "warnings": []}
    else:
        errors = result.errors
        report |= {"error": None, "rows_total": result.rows_total, "rows_valid": result.rows_valid}
        report |= {"error_count": max(result.error_count, len(errors)), "warnings": list(result.warnings)}
    report["errors"] = [
        {"file": _relative_file(e.file, folder), "row": e.row, "field": e.field, "message": e.message}
        for e in errors[:MAX_STORED_ERRORS]
    ]
    version.report = report
    version.rows_total, version.rows_valid = report["rows_total"], report["rows_valid"]
    valid = report["error"] is None and report["error_count"] == 0 and report["rows_valid"] > 0
    version.status = "valid" if valid else "invalid"


def validate_dataset_version(session: Session, storage_root: Path, version_id: str) -> DatasetVersion:
    """Validate a stored version and commit its report (for the API and the ``default``-queue task)."""
    version = session.get(DatasetVersion, version_id)
    if version is None:
        raise NotFoundError(f"dataset version {version_id} not found")
    run_validation(storage_root, version, version.dataset.name)
    session.commit()
    return version


def _in_use(session: Session, version_ids: list[str]) -> int:
    if not version_ids:
        return 0
    query = select(func.count()).where(JobDatasetVersion.dataset_version_id.in_(version_ids))
    return session.scalar(query) or 0


def delete_version(session: Session, storage: Storage, version: DatasetVersion) -> None:
    """Delete one version (commits); 409 while a job uses it."""
    if _in_use(session, [version.id]):
        raise ConflictError(f"version {version.version} is used by a job; it cannot be deleted")
    folder = storage.root / version.storage_path
    session.delete(version)
    _commit_delete(session)
    storage.remove(folder)


def delete_dataset(session: Session, storage: Storage, dataset: Dataset) -> None:
    """Delete a dataset with all versions (commits); 409 while a job uses any of them."""
    used = _in_use(session, [version.id for version in dataset.versions])
    if used:
        raise ConflictError(f"dataset '{dataset.name}' is used by {used} job(s); it cannot be deleted")
    folder = storage.path("datasets", dataset.id)
    session.delete(dataset)
    _commit_delete(session)
    storage.remove(folder)


def _commit_delete(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:  # a job started using it meanwhile
        session.rollback()
        raise ConflictError("the dataset version is used by a job; it cannot be deleted") from exc
