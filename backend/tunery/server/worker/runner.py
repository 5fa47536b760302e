"""Running one job on this worker: wait for room, claim, run the engine, relay, finish."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO

from tunery.server.db.base import utcnow
from tunery.server.db.models import JobKind, JobStatus
from tunery.server.worker import shutdown
from tunery.server.worker.claim import Claim, Refused, try_claim
from tunery.server.worker.context import WorkerContext
from tunery.server.worker.engine_process import EngineProcess, engine_command, engine_env
from tunery.server.worker.events import publish
from tunery.server.worker.export_prep import EngineExtras, PrepareError, prepare_engine
from tunery.server.worker.finish import Outcome, collect_artifacts, decide, finish_attempt
from tunery.server.worker.jobfile import write_job_file
from tunery.server.worker.relay import EventRelay, LeaseLost, LogRelay
from tunery.server.worker.watchdog import Watchdog
from tunery.spec import SpecError

log = logging.getLogger(__name__)

#: The engine command that runs each kind of job.
ENGINE_COMMANDS: dict[JobKind, str] = {JobKind.TRAIN: "train", JobKind.EVAL: "eval", JobKind.EXPORT: "export"}


def run_job(context: WorkerContext, job_id: str, worker: str, queue: str = "gpu") -> str:
    """Claim the job when this worker has room, then run it to the end.

    Waits up to ``claim_wait_seconds`` for a GPU/slot to free up; then the task sends itself to the back
    of the queue (so a shutting-down or busy worker never holds a job for long) and returns ``deferred``.
    """
    from tunery.server.worker.queue import enqueue_job

    claim = wait_and_claim(context, job_id, worker)
    if claim is Refused.GONE:
        return "skipped"
    if claim is Refused.BUSY:  # no room in time, or this worker is shutting down
        try:
            enqueue_job(job_id, queue)
        except Exception:  # the broker is down: the job stays queued and the reaper sends it again
            log.warning("could not send job %s back to the queue", job_id, exc_info=True)
        return "deferred"
    publish(job_id, claim.started_event)
    return run_claimed(context, claim)


def wait_and_claim(context: WorkerContext, job_id: str, worker: str) -> Claim | Refused:
    options = context.options
    deadline = time.monotonic() + options.claim_wait_seconds
    parent = os.getppid()
    if shutdown.requested():
        time.sleep(options.poll_seconds)  # do not spin through the queue while the worker stops
        return Refused.BUSY
    while True:
        lease = timedelta(seconds=options.lease_seconds)
        result = try_claim(context.database.sessions, job_id, worker, lease, utcnow() - options.silence_limit)
        if result is Refused.GONE:
            log.info("job %s is not queued any more; nothing to do", job_id)
        if result is not Refused.BUSY or time.monotonic() >= deadline or os.getppid() != parent:
            return result
        time.sleep(options.poll_seconds)
        if shutdown.requested():
            return Refused.BUSY


def run_claimed(context: WorkerContext, claim: Claim) -> str:
    sessions, root = context.database.sessions, context.storage_root
    command = ENGINE_COMMANDS.get(claim.kind)
    if command is None:
        outcome = Outcome(JobStatus.FAILED, f"{claim.kind.value} jobs are not supported yet", "unsupported_kind")
        return finish_attempt(sessions, root, claim, outcome)
    try:
        files = write_job_file(root, claim.job_id, claim.spec, claim.resume_from)
    except SpecError as exc:
        return finish_attempt(sessions, root, claim, Outcome(JobStatus.FAILED, str(exc), "invalid_spec"))

    try:
        extras = prepare_engine(context, claim, files)
    except (PrepareError, OSError) as exc:
        code, message = (exc.code, exc.message) if isinstance(exc, PrepareError) else ("engine_start_failed", str(exc))
        return finish_attempt(sessions, root, claim, Outcome(JobStatus.FAILED, message, code))

    argv = engine_command(command, files.job_file, extras.args)
    engine = EngineProcess(argv, engine_env(claim.gpus, extras.env), files.folder)
    try:
        engine.start()
    except OSError as exc:
        outcome = Outcome(JobStatus.FAILED, f"could not start the engine: {exc}", "engine_start_failed")
        return finish_attempt(sessions, root, claim, outcome)
    log.info("job %s attempt %d: engine pid %d", claim.job_id, claim.attempt, engine.pid)
    relay = EventRelay(sessions, claim, root, hidden=extras.hidden)
    logs = LogRelay(sessions, claim, hidden=extras.hidden)
    watchdog = Watchdog(sessions, claim, engine, context.options, logs)
    watchdog.start()
    try:
        return _supervise(context, claim, engine, relay, logs, watchdog, (files.output_dir, extras))
    finally:
        if watchdog.is_alive():
            watchdog.stop()


def _supervise(
    context: WorkerContext,
    claim: Claim,
    engine: EngineProcess,
    relay: EventRelay,
    logs: LogRelay,
    watchdog: Watchdog,
    outputs: tuple[Path, EngineExtras],
) -> str:
    """Relay the engine's output until it exits; leave no process behind; write the outcome."""
    readers: list[threading.Thread] = []
    try:
        readers = [
            _reader(engine.stdout, lambda text: _on_stdout(text, relay, logs, watchdog), f"stdout-{claim.job_id}"),
            _reader(engine.stderr, logs.add, f"stderr-{claim.job_id}"),
        ]
        returncode = engine.wait()
    finally:
        engine.ensure_gone()
        for reader in readers:
            reader.join(timeout=60)
        logs.flush()
    if watchdog.lease_lost:
        return "lease_lost"
    outcome = decide(
        relay.terminal,
        returncode,
        cancel_requested=watchdog.cancel_requested,
        interrupted=watchdog.interrupted,
        stderr_tail=list(logs.tail),
    )
    output_dir, extras = outputs
    events = relay.artifacts if claim.kind == JobKind.EXPORT else None  # an export registers what it announced
    found = collect_artifacts(context.storage_root, outcome, output_dir, events, extras.lineage)
    watchdog.stop()
    if watchdog.lease_lost:
        return "lease_lost"
    return finish_attempt(context.database.sessions, context.storage_root, claim, outcome, found)


def _on_stdout(text: str, relay: EventRelay, logs: LogRelay, watchdog: Watchdog) -> None:
    if watchdog.lease_lost:
        return
    try:
        stray = relay.feed(text)
    except LeaseLost:
        watchdog.on_lease_lost()
        return
    if stray is not None:
        logs.add(stray)


def _reader(stream: IO[bytes], handle: Callable[[str], None], name: str) -> threading.Thread:
    def run() -> None:
        for raw in iter(stream.readline, b""):
            try:
                handle(raw.decode("utf-8", "replace"))
            except Exception:
                log.exception("relaying a line failed")

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
