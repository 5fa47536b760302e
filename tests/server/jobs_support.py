"""Helpers of the jobs and stream tests: registered models and datasets, job rows, worker-style events."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import select, update

from tunery.server.config import Settings
from tunery.server.db.models import (
    Dataset,
    DatasetVersion,
    Job,
    JobEvent,
    JobStatus,
    RegisteredModel,
)
from tunery.server.db.session import Database
from tunery.server.live import event_message
from tunery.server.live import publish as send

REDIS_URL = "redis://127.0.0.1:6379/0"


class Catalog:
    """Rows and files the tests need, written straight to the database and the storage root."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def model(
        self, project_id: str | None, name: str, path: str = "/models/tiny-llama", template: str | None = None
    ) -> str:
        """A registered model; ``project_id`` None: shared with every project."""
        with self.database.session() as session:
            model = RegisteredModel(project_id=project_id, name=name, path_or_hub_id=path, template=template)
            session.add(model)
            session.commit()
            return model.id

    def dataset(
        self, project_id: str, name: str, files: dict[str, str], entry: dict[str, Any] | None = None
    ) -> DatasetVersion:
        """The next version of dataset ``name``, with ``files`` (name -> text) under the storage root."""
        entry = entry or {"file_name": next(iter(files))}
        with self.database.session() as session:
            query = select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name)
            dataset = session.scalar(query)
            if dataset is None:
                dataset = Dataset(project_id=project_id, name=name)
                session.add(dataset)
                session.flush()
            number = len(dataset.versions) + 1
            relative = f"datasets/{dataset.id}/v{number}"
            folder = self.settings.storage_root / relative
            folder.mkdir(parents=True)
            for file_name, text in files.items():
                (folder / file_name).write_text(text, encoding="utf-8")
            (folder / "dataset_info.json").write_text(json.dumps({name: entry}), encoding="utf-8")
            version = DatasetVersion(
                dataset_id=dataset.id,
                version=number,
                content_hash=secrets.token_hex(32),
                storage_path=relative,
                info=entry,
                stage="sft",
                status="valid",
            )
            session.add(version)
            session.commit()
            return version

    def job(self, project_id: str, status: JobStatus = JobStatus.RUNNING, **values: Any) -> str:
        """A job row written directly (as if a worker had it), without files."""
        with self.database.session() as session:
            job = Job(project_id=project_id, spec={"model": {"model_name_or_path": "x"}}, status=status, **values)
            session.add(job)
            session.commit()
            return job.id

    def emit(self, job_id: str, seq: int, type: str = "progress", publish: bool = True, **payload: Any) -> None:
        """What the worker's relay does for one event: insert the row, commit, then publish it."""
        self._write(job_id, seq, type, payload, publish)

    def finish(self, job_id: str, seq: int, status: JobStatus = JobStatus.SUCCEEDED) -> None:
        """The last event of a job and its final status, the way the worker ends one."""
        self._write(job_id, seq, "status", {"status": status.value, "message": "done"}, True, status)

    def _write(
        self, job_id: str, seq: int, type: str, payload: dict[str, Any], publish: bool, status: JobStatus | None = None
    ) -> None:
        now = datetime.now(UTC)
        with self.database.session() as session:
            session.add(JobEvent(job_id=job_id, seq=seq, attempt=1, type=type, payload=payload, created_at=now))
            values: dict[str, Any] = {"last_seq": seq}
            if status is not None:
                values |= {"status": status, "finished_at": now}
            session.execute(update(Job).where(Job.id == job_id).values(**values))
            session.commit()
        if publish:
            send(job_id, event_message(seq, type, 1, payload, now), settings=self.settings)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free local port (lifespan included); yields ``host:port``."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", log_config=None)
    server = uvicorn.Server(config)  # log_config None: the process's logging setup stays as it is
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
