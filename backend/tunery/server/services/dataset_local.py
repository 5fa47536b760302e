"""Dataset versions from local files (the demo data at first start), stored like an upload: staged, published
read-only, validated and committed with their report."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tunery.server.db.models import Dataset, DatasetVersion
from tunery.server.errors import InvalidError
from tunery.server.services import datasets
from tunery.server.storage import Storage, check_relative
from tunery.server.uploads import StagedFile, StagedUpload


def _stage_files(source: Path, file_name: str, staging: Path) -> list[StagedFile]:
    """Copy ``source/file_name`` (a file or a folder) into ``staging``; their names, sizes and sha256."""
    origin = source / check_relative(file_name)
    paths = sorted(p for p in origin.rglob("*") if p.is_file()) if origin.is_dir() else [origin]
    if not paths or not all(p.is_file() for p in paths):
        raise InvalidError(f"{origin}: no such data file or folder")
    staged = []
    for path in paths:
        name = path.relative_to(source).as_posix()
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        data = target.read_bytes()
        staged.append(StagedFile(name, len(data), hashlib.sha256(data).hexdigest()))
    return staged


def add_local_version(
    session: Session, storage: Storage, dataset: Dataset, source: Path, entry: dict[str, Any], stage: str | None
) -> DatasetVersion:
    """Publish the files the dataset_info ``entry`` names under ``source`` as the dataset's next version;
    validates its rows for ``stage`` and commits (on failure nothing is left behind)."""
    staging = storage.new_staging()
    try:
        files = _stage_files(source, str(entry.get("file_name", "")), staging)
        upload = StagedUpload(folder=staging, files=files, fields={"entry": json.dumps(entry)})
        version = datasets.add_version(session, storage, dataset, upload, stage)
        try:
            datasets.run_validation(storage.root, version, dataset.name)
        except BaseException:
            storage.remove(storage.root / version.storage_path)
            raise
        datasets.commit_version(session, storage, version)
        return version
    finally:
        if staging.exists():
            storage.remove(staging)
