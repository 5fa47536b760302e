"""Dataset versions imported from a hub (Hugging Face, ModelScope, Modelers).

The API creates the version row (status ``importing``, its ``source`` and ``progress``) and sends the
version id to the ``default`` queue; the worker task downloads the split through the engine (the hub's
library and cache, the cache alone when the hub cannot be reached), writes it as ``data.jsonl`` next to a
dataset_info.json in a staging folder, publishes that as the version's folder and validates it like an upload.
Progress (bytes while downloading, rows while writing) lands on the row as it goes. The row is the truth:
a failure leaves status ``failed`` with the error in its report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from tunery.server.config import Settings
from tunery.server.db.models import Dataset, DatasetVersion
from tunery.server.db.session import Database
from tunery.server.errors import InvalidError
from tunery.server.services import datasets, secrets
from tunery.server.services.dataset_files import INFO_FILE, REMOTE_KEYS
from tunery.server.storage import Storage

log = logging.getLogger(__name__)

DATA_FILE = "data.jsonl"
IMPORTING, FAILED = "importing", "failed"
#: progress is written to the row at most this often (seconds)
PROGRESS_EVERY = 0.5


def import_entry(entry: dict[str, Any] | None) -> dict[str, Any]:
    """The version's dataset_info entry: the caller's columns / formatting over ``file_name: data.jsonl``."""
    entry = dict(entry or {})
    refused = [key for key in (*REMOTE_KEYS, "file_name", "file_sha1") if key in entry]
    if refused:
        raise InvalidError(f"entry: {refused[0]} is set by the import; give only formatting, columns, tags, ranking")
    return {"file_name": DATA_FILE, **entry}


def start_import(
    session: Session,
    storage: Storage,
    dataset: Dataset,
    source: dict[str, Any],
    entry: dict[str, Any] | None,
    stage: str | None,
) -> DatasetVersion:
    """The ``importing`` version row (flushed, not committed); ``source``: hub, repo, subset, split, revision,
    token_secret."""
    full = import_entry(entry)
    secret = source.get("token_secret")
    if secret and secrets.find_secret(session, dataset.project_id, secret) is None:
        raise InvalidError(f"token_secret: no secret '{secret}' in this project")
    number = datasets.next_number(session, dataset)
    version = DatasetVersion(
        dataset_id=dataset.id,
        version=number,
        content_hash="",
        storage_path=storage.relative(storage.path("datasets", dataset.id, f"v{number}")),
        info=full,
        size_bytes=0,
        stage=stage or datasets.default_stage(full),
        status=IMPORTING,
        report={},
        source=source,
        progress={"phase": "queued", "bytes_done": 0, "rows_done": 0, "rows_total": None},
    )
    session.add(version)
    session.flush()
    return version


def enqueue(session: Session, version: DatasetVersion, settings: Settings) -> None:
    """Send the import to the worker (after the commit); a broker failure marks the version failed."""
    from tunery.server.worker.queue import enqueue_hub_import

    try:
        enqueue_hub_import(version.id, settings)
    except Exception as exc:
        log.exception("could not enqueue the import of dataset version %s", version.id)
        _fail(version, f"the work queue is unavailable ({type(exc).__name__}); delete this version and import again")
        session.commit()


def _fail(version: DatasetVersion, message: str) -> None:
    version.status = FAILED
    version.report = {"error": message, "error_count": 0, "errors": [], "warnings": []}
    version.report["validated_at"] = datetime.now(UTC).isoformat()
    version.progress = {**(version.progress or {}), "phase": "failed"}


class _ProgressWriter:
    """Writes the engine's progress to the row in short transactions of their own, at most every 0.5 s."""

    def __init__(self, database: Database, version_id: str) -> None:
        self.database, self.version_id = database, version_id
        self.last, self.phase = 0.0, ""

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        if progress.phase == self.phase and now - self.last < PROGRESS_EVERY:
            return
        self.last, self.phase = now, progress.phase
        value = {
            "phase": progress.phase,
            "bytes_done": progress.bytes_done,
            "rows_done": progress.rows_done,
            "rows_total": progress.rows_total,
        }
        with self.database.session() as session:
            session.execute(
                update(DatasetVersion)
                .where(DatasetVersion.id == self.version_id, DatasetVersion.status == IMPORTING)
                .values(progress=value)
            )
            session.commit()


def _file_hash(entry: dict[str, Any], path: Path) -> str:
    """sha256 over the entry and the file's name and sha256, as for an upload of that file."""
    file_digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            file_digest.update(block)
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    digest.update(f"\n{DATA_FILE}\0{file_digest.hexdigest()}".encode())
    return digest.hexdigest()


def run_import(database: Database, settings: Settings, version_id: str) -> str:
    """The worker task: download, write, publish, validate. Returns the version's final status."""
    from tunery.engine.data.api import DataError
    from tunery.engine.data.hub_import import hub_attr, import_hub_dataset

    storage = Storage(settings.storage_root)
    with database.session() as session:
        version = session.get(DatasetVersion, version_id)
        if version is None or version.status != IMPORTING:
            return "gone" if version is None else version.status
        source, entry, name = dict(version.source or {}), dict(version.info), version.dataset.name
        project_id, storage_path = version.dataset.project_id, version.storage_path
        token = None
        if source.get("token_secret"):
            token = secrets.secret_value(session, settings, project_id, source["token_secret"])
        session.commit()
    staging = storage.new_staging()
    error: str | None = None
    try:
        attr = hub_attr(source["hub"], source["repo"], source.get("subset"), source["split"], source.get("revision"))
        (staging / INFO_FILE).write_text(json.dumps({name: entry}, indent=2), encoding="utf-8")
        result = import_hub_dataset(
            attr, str(staging / DATA_FILE), token=token, progress=_ProgressWriter(database, version_id)
        )
    except DataError as exc:
        error = str(exc)
    except Exception as exc:
        log.exception("hub import of dataset version %s failed", version_id)
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        storage.remove(staging)
        return _finish_failed(database, version_id, error)
    return _publish(database, storage, settings, version_id, staging, storage_path, entry, result.size_bytes)


def _finish_failed(database: Database, version_id: str, error: str) -> str:
    with database.session() as session:
        version = session.get(DatasetVersion, version_id)
        if version is None:
            return "gone"
        _fail(version, error)
        session.commit()
    return FAILED


def _publish(
    database: Database,
    storage: Storage,
    settings: Settings,
    version_id: str,
    staging: Path,
    storage_path: str,
    entry: dict[str, Any],
    size: int,
) -> str:
    digest = _file_hash(entry, staging / DATA_FILE)
    target = storage.root / storage_path
    if target.exists():  # an earlier attempt published, then stopped before its commit
        storage.remove(target)
    published = storage.publish(staging, *Path(storage_path).parts)
    with database.session() as session:
        version = session.get(DatasetVersion, version_id)
        if version is None:  # deleted while importing
            storage.remove(published)
            return "gone"
        version.content_hash, version.size_bytes = digest, size
        datasets.run_validation(settings.storage_root, version, version.dataset.name)
        version.progress = {**(version.progress or {}), "phase": "done"}
        session.commit()
        return version.status
