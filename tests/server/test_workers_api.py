"""GET /api/workers: machines, GPUs and running jobs, with other projects' jobs kept anonymous."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.server.factories import Factory, ProjectHandle, UserHandle
from tunery.server.db.models import Gpu, Job, JobStatus, Worker
from tunery.server.db.session import Database


def test_workers_show_gpus_and_only_own_jobs(
    client: TestClient, database: Database, factory: Factory, project: ProjectHandle, owner: UserHandle
) -> None:
    other = factory.project()
    now = datetime.now(UTC)
    with database.session() as session:
        session.add(Worker(id="gpu-box:1", hostname="gpu-box", queues=["gpu"], slots=2, last_seen_at=now))
        session.flush()
        mine = Job(
            project_id=project.id, name="mine", spec={}, status=JobStatus.RUNNING, worker_id="gpu-box:1", gpus=[0]
        )
        theirs = Job(
            project_id=other.id, name="secret", spec={}, status=JobStatus.RUNNING, worker_id="gpu-box:1", gpus=[1]
        )
        session.add_all([mine, theirs])
        session.flush()
        session.add_all(
            [
                Gpu(worker_id="gpu-box:1", index=0, name="H200", memory_mb=143000, job_id=mine.id),
                Gpu(worker_id="gpu-box:1", index=1, name="H200", memory_mb=143000, job_id=theirs.id),
                Gpu(worker_id="gpu-box:1", index=2, name="H200", memory_mb=143000),
            ]
        )
        session.commit()
        mine_id = mine.id

    response = client.get("/api/workers", headers=owner.headers)
    assert response.status_code == 200
    [worker] = response.json()
    assert worker["id"] == "gpu-box:1" and worker["queues"] == ["gpu"] and worker["status"] == "online"
    assert [(g["index"], g["busy"], g["job_id"]) for g in worker["gpus"]] == [
        (0, True, mine_id),
        (1, True, None),
        (2, False, None),
    ]
    assert sorted((j["id"] or "", j["name"] or "", j["gpus"][0]) for j in worker["jobs"]) == [
        ("", "", 1),
        (mine_id, "mine", 0),
    ]
    assert "secret" not in response.text
    assert client.get("/api/workers").status_code == 401
