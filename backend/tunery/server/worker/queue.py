"""Sending work to the queue. The job row is the truth: a lost message is sent again by the reaper."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from tunery.server.config import Settings

if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped]

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"
RUN_JOB = "tunery.run_job"
REAP = "tunery.reap"
VALIDATE_DATASET = "tunery.validate_dataset_version"
IMPORT_HUB_DATASET = "tunery.import_hub_dataset"

RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5}

_apps: dict[str, Celery] = {}
_lock = threading.Lock()


def celery_for(broker_url: str) -> Celery:
    """One Celery app per broker URL in this process (the API only publishes with it)."""
    from tunery.server.worker.celery_app import create_celery

    with _lock:
        if broker_url not in _apps:
            _apps[broker_url] = create_celery(broker_url)
        return _apps[broker_url]


def enqueue_job(job_id: str, queue: str = GPU_QUEUE, settings: Settings | None = None) -> None:
    """Ask a worker to run the job (call after committing the queued row). Raises if the broker is down."""
    settings = settings or Settings.from_env()
    celery_for(settings.broker_url).send_task(
        RUN_JOB,
        args=[job_id],
        kwargs={"queue": queue},
        queue=queue,
        retry=True,
        retry_policy=RETRY_POLICY,
    )


def enqueue_dataset_validation(version_id: str, settings: Settings | None = None) -> None:
    """Validate a stored dataset version on the ``default`` queue (its report lands on the row)."""
    settings = settings or Settings.from_env()
    celery_for(settings.broker_url).send_task(
        VALIDATE_DATASET, args=[version_id], queue=DEFAULT_QUEUE, retry=True, retry_policy=RETRY_POLICY
    )


def enqueue_hub_import(version_id: str, settings: Settings | None = None) -> None:
    """Import a hub dataset into a stored dataset version on the ``default`` queue (progress on the row)."""
    settings = settings or Settings.from_env()
    celery_for(settings.broker_url).send_task(
        IMPORT_HUB_DATASET, args=[version_id], queue=DEFAULT_QUEUE, retry=True, retry_policy=RETRY_POLICY
    )
