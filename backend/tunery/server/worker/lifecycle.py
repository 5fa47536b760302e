"""Starting a worker (``tunery worker``) and the scheduler (``tunery scheduler``).

On shutdown (SIGTERM/SIGINT to the worker) each running engine gets SIGTERM: it checkpoints and exits,
and its job goes back to the queue resuming from that checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

import psutil
from celery import signals  # type: ignore[import-untyped]

from tunery.server.config import Settings
from tunery.server.worker import shutdown
from tunery.server.worker.celery_app import create_celery
from tunery.server.worker.context import WorkerContext, get_context, set_context
from tunery.server.worker.engine_process import ENGINE_MODULE
from tunery.server.worker.gpus import discover_gpus, select_gpus
from tunery.server.worker.queue import DEFAULT_QUEUE, GPU_QUEUE
from tunery.server.worker.registry import WorkerHeartbeat, WorkerIdentity, announce, go_offline
from tunery.server.worker.tasks import WORKER_NAME_ENV

log = logging.getLogger(__name__)

DEFAULT_QUEUES = (GPU_QUEUE, DEFAULT_QUEUE)


def worker_identity(name: str, queues: tuple[str, ...], concurrency: int | None) -> WorkerIdentity:
    """GPUs from nvidia-smi (restricted to CUDA_VISIBLE_DEVICES when set); none: ``concurrency`` CPU slots."""
    gpus = select_gpus(discover_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    slots = concurrency or max(1, len(gpus))
    return WorkerIdentity(name=name, queues=queues, gpus=tuple(gpus), slots=slots)


def run_worker(settings: Settings, identity: WorkerIdentity, loglevel: str = "INFO") -> int:
    """Announce the worker, then run Celery's prefork worker until it is stopped."""
    os.environ[WORKER_NAME_ENV] = identity.name
    context = WorkerContext.from_settings(settings)
    set_context(context)
    announce(context.database.sessions, identity)
    gpus = ", ".join(f"{gpu.index}: {gpu.name}" for gpu in identity.gpus) or f"none ({identity.slots} CPU slots)"
    log.info("worker %s on queues %s; GPUs %s", identity.name, ",".join(identity.queues), gpus)
    heartbeat = WorkerHeartbeat(context.database.sessions, identity, context.options.heartbeat_seconds)
    jobs = min(identity.slots, len(identity.gpus)) if identity.gpus else identity.slots  # as announce() stores it

    def on_ready(**_: Any) -> None:
        heartbeat.start()

    def on_shutting_down(**_: Any) -> None:
        # engines first: nothing below may delay their SIGTERM (the pool's watchdogs also see the flag)
        stopped = stop_engines()
        shutdown.request()
        if stopped:
            log.warning("stopping %d running job(s); they will resume from their checkpoints", stopped)

    def on_shutdown(**_: Any) -> None:
        heartbeat.stop()
        with contextlib.suppress(Exception):
            go_offline(get_context().database.sessions, identity.name)

    shutdown.install()
    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutting_down.connect(on_shutting_down, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    app = create_celery(settings.broker_url, context.options.reaper_interval_seconds)
    node = identity.name if "@" in identity.name else f"{identity.name}@{identity.hostname}"
    argv = [
        "worker",
        "--queues",
        ",".join(identity.queues),
        "--concurrency",
        str(jobs + 1),
        "--hostname",
        node,
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        loglevel,
    ]
    app.worker_main(argv)
    return 0


def stop_engines() -> int:
    """SIGTERM the process group of every engine this worker started (they lead their own groups)."""
    count = 0
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if ENGINE_MODULE in process.cmdline() and os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGTERM)
                count += 1
    return count


def run_scheduler(settings: Settings, loglevel: str = "INFO") -> int:
    """Celery beat: sends the reaper task every ``reaper_interval_seconds`` (schedule kept in TUNERY_HOME)."""
    context = WorkerContext.from_settings(settings)
    app = create_celery(settings.broker_url, context.options.reaper_interval_seconds)
    schedule = settings.home / "celerybeat-schedule"
    beat = app.Beat(schedule=str(schedule), loglevel=loglevel, max_interval=context.options.reaper_interval_seconds)
    beat.run()
    return 0
