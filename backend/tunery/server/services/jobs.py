"""Jobs: create from a spec, cancel, resume, retry. Every state change is a guarded UPDATE on the job row.

The caller commits; after the commit it calls :func:`after_commit` (publish to watchers, enqueue the task).
Files of job ``ID`` live under ``<storage root>/jobs/ID`` (``data`` for its dataset_info.json, ``output``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, joinedload

from tunery.server.auth.access import check_role, role_in_project
from tunery.server.auth.principal import Principal
from tunery.server.config import Settings
from tunery.server.db.base import new_id, utcnow
from tunery.server.db.models import (
    Checkpoint,
    DatasetVersion,
    Experiment,
    Job,
    JobDatasetVersion,
    JobEvent,
    JobKind,
    JobStatus,
    Role,
)
from tunery.server.errors import ConflictError, NotFoundError
from tunery.server.services import job_prepare
from tunery.server.services.job_inputs import JobInputError, Problem, write_data_dir
from tunery.spec import JobSpec, SpecError

log = logging.getLogger(__name__)
RESUMABLE = (JobStatus.FAILED, JobStatus.CANCELLED)


class JobNotFound(NotFoundError):
    def __init__(self) -> None:
        super().__init__("job not found")


class JobStateError(ConflictError):
    """The job's status does not allow this action (HTTP 409)."""


@dataclass
class NewJob:
    project_id: str
    spec: Mapping[str, Any]
    experiment_id: str | None = None
    name: str | None = None
    gpus: int | None = None
    created_by: str | None = None


@dataclass
class Outcome:
    """What to do once the transaction is committed."""

    job: Job
    events: list[dict[str, Any]] = field(default_factory=list)
    enqueue: bool = False
    created: bool = False  # a new job (with a new folder)


def visible_job(
    session: Session, principal: Principal, job_id: str, minimum: Role = Role.VIEWER, *, with_datasets: bool = False
) -> Job:
    """The job if the caller's project role allows ``minimum``; 404 for others' jobs (403 for a low role).
    One query (the role is a subquery); ``with_datasets`` loads ``dataset_versions`` in it too."""
    query = select(Job, role_in_project(principal.user_id, Job.project_id)).where(Job.id == job_id)
    if with_datasets:
        query = query.options(joinedload(Job.dataset_versions))
    row = session.execute(query).unique().first()
    if row is None or row[1] is None:  # not a member: as if it did not exist
        raise JobNotFound()
    check_role(row[1], minimum)
    job: Job = row[0]
    return job


def job_folder(settings: Settings, job_id: str) -> Path:
    return settings.storage_root / "jobs" / job_id


def create_job(session: Session, settings: Settings, new: NewJob) -> Outcome:
    """Validate spec and data, write the job's data folder and row (not committed); JobInputError if bad.
    A spec that does not train (``do_train: false``: predict, a benchmark, a judge pass) is an eval job."""
    spec = job_prepare.parse_spec(new.spec)
    check_experiment(session, new)
    resolved = job_prepare.resolve(session, new.project_id, spec)
    if spec.training.do_train:
        return insert_job(session, settings, new, resolved.spec, resolved.datasets, resolved.model.id, JobKind.TRAIN)
    evaluation = {"model": resolved.model.name, "kind": job_prepare.eval_kind_of(spec)}
    return insert_job(
        session, settings, new, resolved.spec, resolved.datasets, resolved.model.id, JobKind.EVAL, evaluation
    )


def insert_job(
    session: Session,
    settings: Settings,
    new: NewJob,
    spec: JobSpec,
    datasets: Mapping[str, DatasetVersion],
    base_model_id: str | None,
    kind: JobKind,
    evaluation: dict[str, Any] | None = None,
) -> Outcome:
    """The job's folder (its data folder naming ``datasets``) and row for a resolved spec, after reading every
    row of its datasets (not committed; the folder is removed again on any error)."""
    job_id = new_id()
    folder = job_folder(settings, job_id)
    try:
        write_data_dir(settings.storage_root, folder / "data", dict(datasets))
        job_prepare.place(spec, folder / "data", folder / "output")
        if datasets:
            job_prepare.validate_data(spec, dict(datasets), settings.storage_root)
        job = _new_row(session, settings, job_id, spec, datasets, new)
        job.base_model_id = base_model_id
        job.kind = kind
        job.evaluation = evaluation
        session.flush()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Outcome(job, enqueue=True, created=True)


def retry_job(session: Session, settings: Settings, job_id: str, user_id: str | None) -> Outcome:
    """A new job with the finished job's spec and dataset versions (``parent_job_id`` set)."""
    parent = _get(session, job_id)
    if not parent.status.finished:
        raise JobStateError(f"job is {parent.status.value}; only a finished job can be retried")
    try:
        spec = JobSpec.from_mapping(parent.spec, source=f"job {parent.id}")
    except SpecError as exc:
        raise JobInputError([Problem(p.field, p.message) for p in exc.problems]) from exc
    lineage = {link.name: session.get_one(DatasetVersion, link.dataset_version_id) for link in parent.dataset_versions}
    new = NewJob(parent.project_id, {}, parent.experiment_id, parent.name, parent.gpu_count, user_id)
    new_job_id = new_id()
    folder = job_folder(settings, new_job_id)
    try:
        write_data_dir(settings.storage_root, folder / "data", lineage)
        job_prepare.place(spec, folder / "data", folder / "output")
        job = _new_row(session, settings, new_job_id, spec, lineage, new)
        job.base_model_id = parent.base_model_id
        job.parent_job_id = parent.id
        job.kind = parent.kind
        job.queue = parent.queue
        job.evaluation = parent.evaluation
        job.export = parent.export
        session.flush()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Outcome(job, enqueue=True, created=True)


def cancel_job(session: Session, job_id: str) -> Outcome:
    """Queued: cancelled at once. Running: ``cancel_requested`` (the worker stops it). Finished: 409."""
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now, last_seq=Job.last_seq + 1)
        .returning(Job.last_seq, Job.attempt)
    ).first()
    if row is not None:
        event = _status_event(session, job_id, row.last_seq, row.attempt, "cancelled", "cancelled before it started")
        return Outcome(_reload(session, job_id), [event])
    requested = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
        .returning(Job.id)
    ).first()
    job = _reload(session, job_id)
    if requested is None and job.status.finished:
        raise JobStateError(f"job already {job.status.value}")
    return Outcome(job)


def resume_job(session: Session, settings: Settings, job_id: str) -> Outcome:
    """Queue a failed or cancelled job again, as a new attempt resuming from its newest checkpoint."""
    job = _get(session, job_id)
    if job.status not in RESUMABLE:
        raise JobStateError(f"job is {job.status.value}; only a failed or cancelled job can be resumed")
    checkpoint = newest_checkpoint(session, settings, job_id)
    if checkpoint is None:
        raise JobStateError("job has no checkpoint to resume from; retry it instead")
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(RESUMABLE))
        .values(
            status=JobStatus.QUEUED,
            cancel_requested=False,
            resume_from=checkpoint.path,
            queued_at=utcnow(),
            started_at=None,
            finished_at=None,
            error_code=None,
            error_message=None,
            lease_owner=None,
            lease_expires_at=None,
            heartbeat_at=None,
            worker_id=None,
            gpus=[],
            max_attempts=Job.attempt + settings.max_attempts,
            last_seq=Job.last_seq + 1,
        )
        .returning(Job.last_seq, Job.attempt)
    ).first()
    if row is None:
        raise JobStateError("job changed state meanwhile; try again")
    message = f"queued to resume from step {checkpoint.step}"
    event = _status_event(session, job_id, row.last_seq, row.attempt, "queued", message)
    return Outcome(_reload(session, job_id), [event], enqueue=True)


def newest_checkpoint(session: Session, settings: Settings, job_id: str) -> Checkpoint | None:
    """The newest checkpoint of the job that still exists on disk."""
    checkpoints = session.scalars(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.deleted.is_(False))
        .order_by(Checkpoint.step.desc())
    )
    root = settings.storage_root.resolve()
    for checkpoint in checkpoints:
        path = (root / checkpoint.path).resolve()
        if path.is_relative_to(root) and path.is_dir():
            return checkpoint
    return None


def commit(session: Session, settings: Settings, outcome: Outcome) -> None:
    """Commit the outcome (removing a new job's folder if that fails), then :func:`after_commit`."""
    try:
        session.commit()
    except BaseException:
        if outcome.created:
            shutil.rmtree(job_folder(settings, outcome.job.id), ignore_errors=True)
        raise
    after_commit(outcome, settings)


def after_commit(outcome: Outcome, settings: Settings) -> None:
    """Tell watchers and the queue; a broker failure is logged, the queued row stays the truth."""
    from tunery.server import live

    for event in outcome.events:
        live.publish(outcome.job.id, event, settings=settings)
    if outcome.enqueue:
        from tunery.server.worker.queue import enqueue_job

        try:
            enqueue_job(outcome.job.id, queue=outcome.job.queue, settings=settings)
        except Exception:
            log.exception("could not enqueue job %s; it stays queued", outcome.job.id)


def _new_row(
    session: Session,
    settings: Settings,
    job_id: str,
    spec: JobSpec,
    datasets: Mapping[str, DatasetVersion],
    new: NewJob,
) -> Job:
    gpus = new.gpus if new.gpus is not None else (0 if spec.training.use_cpu else 1)
    job = Job(
        id=job_id,
        project_id=new.project_id,
        experiment_id=new.experiment_id,
        created_by=new.created_by,
        name=new.name or spec.training.run_name,
        spec=spec.model_dump(mode="json"),
        status=JobStatus.QUEUED,
        gpu_count=gpus,
        max_attempts=settings.max_attempts,
        output_dir=f"jobs/{job_id}/output",
        queued_at=utcnow(),
    )
    job.dataset_versions = [
        JobDatasetVersion(dataset_version_id=version.id, name=name) for name, version in datasets.items()
    ]
    session.add(job)
    return job


def check_experiment(session: Session, new: NewJob) -> None:
    if new.experiment_id is None:
        return
    experiment = session.get(Experiment, new.experiment_id)
    if experiment is None or experiment.project_id != new.project_id:
        raise JobInputError([Problem("experiment_id", "no such experiment in this project")])


def _status_event(session: Session, job_id: str, seq: int, attempt: int, status: str, message: str) -> dict[str, Any]:
    from tunery.server.live.messages import event_message

    payload = {"status": status, "message": message}
    now = utcnow()
    session.execute(
        insert(JobEvent).values(job_id=job_id, seq=seq, attempt=attempt, type="status", payload=payload, created_at=now)
    )
    return event_message(seq, "status", attempt, payload, now)


def _get(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound()
    return job


def _reload(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound()
    return job
