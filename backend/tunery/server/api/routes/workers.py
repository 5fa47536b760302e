"""Workers: which machines run jobs, their GPUs, and what runs on each (jobs of other projects stay anonymous)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from tunery.server.api.deps import PrincipalDep, SessionDep
from tunery.server.auth.access import member_project_ids
from tunery.server.db.models import Gpu, Job, JobStatus, Worker

router = APIRouter(tags=["workers"])


class RunningJob(BaseModel):
    id: str | None  # None when the job belongs to a project the caller is not in
    name: str | None
    gpus: list[int]


class GpuPublic(BaseModel):
    index: int
    name: str
    memory_mb: int
    busy: bool
    job_id: str | None


class WorkerPublic(BaseModel):
    id: str
    hostname: str
    status: str
    queues: list[str]
    slots: int
    last_seen_at: datetime
    gpus: list[GpuPublic]
    jobs: list[RunningJob]


@router.get("/api/workers")
def list_workers(principal: PrincipalDep, session: SessionDep) -> list[WorkerPublic]:
    visible = set(session.scalars(member_project_ids(principal.user_id)))
    workers = session.scalars(select(Worker).order_by(Worker.id)).all()
    gpus = session.scalars(select(Gpu).order_by(Gpu.worker_id, Gpu.index)).all()
    running = session.scalars(select(Job).where(Job.status == JobStatus.RUNNING)).all()
    mine = {job.id for job in running if job.project_id in visible}
    out = []
    for worker in workers:
        jobs = [
            RunningJob(
                id=job.id if job.id in mine else None,
                name=job.name if job.id in mine else None,
                gpus=[int(index) for index in job.gpus],
            )
            for job in running
            if job.worker_id == worker.id
        ]
        cards = [
            GpuPublic(
                index=gpu.index,
                name=gpu.name,
                memory_mb=gpu.memory_mb,
                busy=gpu.job_id is not None,
                job_id=gpu.job_id if gpu.job_id in mine else None,
            )
            for gpu in gpus
            if gpu.worker_id == worker.id
        ]
        out.append(
            WorkerPublic(
                id=worker.id,
                hostname=worker.hostname,
                status=worker.status,
                queues=list(worker.queues),
                slots=worker.slots,
                last_seen_at=worker.last_seen_at,
                gpus=cards,
                jobs=jobs,
            )
        )
    return out
