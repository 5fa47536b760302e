"""The Celery app: queues ``gpu`` (train/eval/export) and ``default`` (reaper, data chores).

Tasks are acked late, but nothing relies on redelivery: the DB row decides who runs a job (see claim.py)
and the reaper sends lost work again. No results are stored.
"""

from __future__ import annotations

from celery import Celery  # type: ignore[import-untyped]
from kombu import Queue  # type: ignore[import-untyped]

from tunery.server.worker.queue import DEFAULT_QUEUE, GPU_QUEUE, IMPORT_HUB_DATASET, REAP, RUN_JOB, VALIDATE_DATASET

#: Redis redelivers unacked messages after this long; duplicates are harmless (the claim refuses them).
REDIS_VISIBILITY_TIMEOUT = 24 * 3600


def is_virtual_transport(broker_url: str) -> bool:
    """The serverless kombu transports (SQLAlchemy, filesystem) have no fanout: no remote control."""
    return broker_url.split("://", 1)[0] in ("sqla+sqlite", "sqla+postgresql", "sqlalchemy", "filesystem", "memory")


def create_celery(broker_url: str, reaper_interval_seconds: float = 30.0) -> Celery:
    app = Celery("tunery", broker=broker_url, set_as_current=False)
    options = {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT} if broker_url.startswith("redis") else {}
    app.conf.update(
        task_queues=[Queue(GPU_QUEUE), Queue(DEFAULT_QUEUE)],
        task_default_queue=DEFAULT_QUEUE,
        task_routes={
            RUN_JOB: {"queue": GPU_QUEUE},
            REAP: {"queue": DEFAULT_QUEUE},
            VALIDATE_DATASET: {"queue": DEFAULT_QUEUE},
            IMPORT_HUB_DATASET: {"queue": DEFAULT_QUEUE},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_enable_remote_control=not is_virtual_transport(broker_url),
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options=options,
        beat_schedule={
            "reap": {
                "task": REAP,
                "schedule": reaper_interval_seconds,
                "options": {"queue": DEFAULT_QUEUE, "expires": reaper_interval_seconds},
            }
        },
    )
    from tunery.server.worker.tasks import register_tasks

    register_tasks(app)
    return app
