"""The Celery tasks: they take ids and call the domain code."""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

from tunery.server.worker.queue import GPU_QUEUE, IMPORT_HUB_DATASET, REAP, RUN_JOB, VALIDATE_DATASET

WORKER_NAME_ENV = "TUNERY_WORKER_NAME"


def current_worker_name() -> str:
    name = os.environ.get(WORKER_NAME_ENV)
    if not name:
        raise RuntimeError(f"{WORKER_NAME_ENV} is not set: start workers with `tunery worker`")
    return name


def register_tasks(app: Celery) -> None:
    @app.task(name=RUN_JOB)
    def run_job(job_id: str, queue: str = GPU_QUEUE) -> str:
        from tunery.server.worker.context import get_context
        from tunery.server.worker.runner import run_job

        return run_job(get_context(), job_id, current_worker_name(), queue)

    @app.task(name=REAP)
    def reap() -> dict[str, list[str]]:
        from tunery.server.worker.context import get_context
        from tunery.server.worker.reaper import reap

        return reap(get_context()).as_dict()

    @app.task(name=VALIDATE_DATASET)
    def validate_dataset_version(version_id: str) -> str:
        from tunery.server.services.datasets import validate_dataset_version
        from tunery.server.worker.context import get_context

        context = get_context()
        with context.database.session() as session:
            return validate_dataset_version(session, context.storage_root, version_id).status

    @app.task(name=IMPORT_HUB_DATASET)
    def import_hub_dataset(version_id: str) -> str:
        from tunery.server.services.dataset_import import run_import
        from tunery.server.worker.context import get_context

        context = get_context()
        return run_import(context.database, context.settings, version_id)
