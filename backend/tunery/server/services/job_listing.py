"""Listing jobs: filters and an opaque cursor on (created_at, id), newest first, stable under inserts."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Row, Select, Text, and_, cast, or_, select
from sqlalchemy.orm import Session

from tunery.server.db.models import Job, JobKind, JobStatus, RegisteredModel
from tunery.server.errors import InvalidError


class BadCursor(InvalidError):
    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned")


@dataclass
class JobFilter:
    project_ids: Sequence[str] | Select[Any]
    statuses: Sequence[JobStatus] = ()
    experiment_id: str | None = None
    model: str | None = None  # a registered model's id or name
    text: str | None = None  # searched in the name and the spec
    kinds: Sequence[JobKind] = ()


class _Positioned(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Positioned)


def encode_cursor(job: _Positioned) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        when = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor() from exc
    if when.tzinfo is None or not isinstance(job_id, str):
        raise BadCursor()
    return when, job_id


#: the columns a job list shows; the spec (a large JSON document) and the worker's bookkeeping are not read
SUMMARY_COLUMNS = (
    Job.id, Job.project_id, Job.experiment_id, Job.base_model_id, Job.parent_job_id, Job.created_by, Job.name,
    Job.kind, Job.status, Job.cancel_requested, Job.attempt, Job.max_attempts, Job.gpu_count, Job.progress,
    Job.last_seq, Job.error_code, Job.error_message, Job.created_at, Job.queued_at, Job.started_at, Job.finished_at,
    Job.best_checkpoint_step, Job.stopped_early,
)  # fmt: skip
SUMMARY_FIELDS = tuple(column.key for column in SUMMARY_COLUMNS)


def _page(where: JobFilter, cursor: str | None, limit: int, columns: Select[Any] | None = None) -> Select[Any]:
    query = _filtered(where, columns).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    if cursor:
        created, job_id = decode_cursor(cursor)
        query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id)))
    return query


def _split(rows: list[T], limit: int) -> tuple[list[T], str | None]:
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None


def list_jobs(session: Session, where: JobFilter, cursor: str | None, limit: int) -> tuple[list[Job], str | None]:
    """One page of jobs (newest first) and the cursor of the next page (None on the last one)."""
    return _split(list(session.scalars(_page(where, cursor, limit))), limit)


def list_job_summaries(
    session: Session, where: JobFilter, cursor: str | None, limit: int, *extra: Any
) -> tuple[list[Row[Any]], str | None]:
    """Like ``list_jobs``, as rows of SUMMARY_COLUMNS (then the ``extra`` columns) only (no ORM objects, no
    spec: fast for lists)."""
    query = _page(where, cursor, limit, select(*SUMMARY_COLUMNS, *extra))
    return _split(list(session.execute(query).all()), limit)


def _filtered(where: JobFilter, columns: Select[Any] | None = None) -> Select[Any]:
    query = (select(Job) if columns is None else columns).where(Job.project_id.in_(where.project_ids))
    if where.statuses:
        query = query.where(Job.status.in_(where.statuses))
    if where.kinds:
        query = query.where(Job.kind.in_(where.kinds))
    if where.experiment_id:
        query = query.where(Job.experiment_id == where.experiment_id)
    if where.model:
        named = select(RegisteredModel.id).where(
            RegisteredModel.name == where.model, RegisteredModel.project_id.in_(where.project_ids)
        )
        query = query.where(or_(Job.base_model_id == where.model, Job.base_model_id.in_(named)))
    if where.text:
        pattern = "%" + where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Job.name.ilike(pattern, escape="\\"), cast(Job.spec, Text).ilike(pattern, escape="\\")))
    return query
