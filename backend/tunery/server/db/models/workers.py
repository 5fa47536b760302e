"""Workers, their GPUs (allocation is one row per GPU, so it is atomic) and idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tunery.server.db.base import Base, CreatedMixin, IdMixin


class Worker(CreatedMixin, Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # hostname:pid or a configured name
    hostname: Mapped[str] = mapped_column(String(255))
    queues: Mapped[list[Any]] = mapped_column(default=list)
    slots: Mapped[int] = mapped_column(Integer, default=1)  # concurrent jobs on a CPU-only worker
    last_seen_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="online")  # online | offline


class Gpu(Base):
    """One accelerator of a worker; ``job_id`` is set while a job holds it."""

    __tablename__ = "gpus"
    __table_args__ = (UniqueConstraint("worker_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)


class IdempotencyKey(IdMixin, CreatedMixin, Base):
    """The first response to a POST with an Idempotency-Key, replayed for repeats of that key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
