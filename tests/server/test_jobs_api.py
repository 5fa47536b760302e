"""The jobs API against real PostgreSQL: create (JSON / LF YAML), validation, listing, state changes, files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.server.factories import Factory, ProjectHandle
from tests.server.jobs_support import Catalog
from tests.support.tiny_models import SHARED_DATA
from tunery.server.config import Settings
from tunery.server.db.models import (
    Artifact,
    Checkpoint,
    Job,
    JobEvent,
    JobStatus,
    LogLine,
    Metric,
    Role,
)
from tunery.server.db.session import Database

LF_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "lf_configs" / "llama3_lora_sft.yaml"
GOOD_ROWS = json.dumps(
    [
        {"instruction": "Say hi", "input": "", "output": "Hi!"},
        {"instruction": "Count to two", "input": "", "output": "1, 2"},
    ]
)
BAD_ROWS = json.dumps(
    [
        {"instruction": "Say hi", "input": "", "output": "Hi!"},
        {"instruction": "Count to two", "input": "", "output": 12},
    ]
)


@pytest.fixture
def world(database: Database, settings: Settings) -> Catalog:
    return Catalog(database, settings)


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> list[str]:
    """Job ids handed to the worker's ``enqueue_job`` (recorded here instead of sent to a broker)."""
    from tunery.server.worker import queue

    sent: list[str] = []

    def record(job_id: str, queue: str = queue.GPU_QUEUE, settings: Settings | None = None) -> None:
        assert settings is not None and settings.broker_url == expected_broker
        sent.append(job_id)

    expected_broker = settings.broker_url
    monkeypatch.setattr(queue, "enqueue_job", record)
    return sent


@pytest.fixture
def registered(world: Catalog, project: ProjectHandle) -> ProjectHandle:
    """The project, with a registered model ``tiny`` and dataset ``greetings``."""
    world.model(project.id, "tiny", template="llama3")
    world.dataset(project.id, "greetings", {"train.json": GOOD_ROWS})
    return project


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"model_name_or_path": "tiny"},
        "data": {"dataset": ["greetings"], "cutoff_len": 256},
        "method": {"stage": "sft", "finetuning_type": "lora", "lora_rank": 4},
        "training": {"max_steps": 2, "learning_rate": 1e-4, "output_dir": "saves/anything"},
    }
    for section, values in overrides.items():
        body[section] = {**body.get(section, {}), **values}
    return body


def create(client: TestClient, project: ProjectHandle, body_spec: dict[str, Any], **extra: Any) -> Any:
    body = {"spec": body_spec, "project_id": project.id, **extra}
    return client.post("/api/jobs", json=body, headers=project.owner.headers)


def count_jobs(world: Catalog, project_id: str) -> int:
    with world.database.session() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.project_id == project_id)) or 0


def job_folders(world: Catalog) -> set[str]:
    folder = world.settings.storage_root / "jobs"
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


def test_create_from_json(client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]) -> None:
    response = create(client, registered, spec(), name="first", gpus=0)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["name"] == "first" and job["gpu_count"] == 0
    assert enqueued == [job["id"]]
    assert [d["name"] for d in job["dataset_versions"]] == ["greetings"]

    fetched = client.get(f"/api/jobs/{job['id']}", headers=registered.owner.headers).json()
    assert fetched["status"] == "queued"
    stored = fetched["spec"]
    assert stored["model"]["model_name_or_path"] == "/models/tiny-llama"  # the registered path
    assert stored["data"]["template"] == "llama3"  # from the registered model
    data_dir = Path(stored["data"]["dataset_dir"])
    assert data_dir == world.settings.storage_root / "jobs" / job["id"] / "data"
    info = json.loads((data_dir / "dataset_info.json").read_text())
    assert (data_dir / info["greetings"]["file_name"]).read_text() == GOOD_ROWS
    assert stored["training"]["output_dir"].endswith(f"jobs/{job['id']}/output")


def test_shared_models_are_usable_and_a_project_model_of_the_same_name_wins(
    client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]
) -> None:
    world.model(None, "shared-base", path="/models/shared", template="chatml")
    response = create(client, registered, spec(model={"model_name_or_path": "shared-base"}))
    assert response.status_code == 201, response.text
    job = client.get(f"/api/jobs/{response.json()['id']}", headers=registered.owner.headers).json()
    assert (job["spec"]["model"]["model_name_or_path"], job["spec"]["data"]["template"]) == ("/models/shared", "chatml")

    world.model(None, "tiny", path="/models/shared-tiny")  # the project's own "tiny" is used, not this one
    job_id = create(client, registered, spec()).json()["id"]
    job = client.get(f"/api/jobs/{job_id}", headers=registered.owner.headers).json()
    assert job["spec"]["model"]["model_name_or_path"] == "/models/tiny-llama"


def test_create_from_llamafactory_yaml(
    client: TestClient, world: Catalog, factory: Factory, enqueued: list[str]
) -> None:
    account = factory.project()  # its owner has exactly one project: no project_id needed
    world.model(account.id, "llama3-8b", path="meta-llama/Meta-Llama-3-8B-Instruct")
    for name in ("identity", "alpaca_en_demo"):
        text = (SHARED_DATA / f"{name}.json").read_text(encoding="utf-8")
        world.dataset(account.id, name, {f"{name}.json": text})
    response = client.post(
        "/api/jobs?name=lf",
        content=LF_CONFIG.read_bytes(),
        headers={**account.owner.headers, "Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["project_id"] == account.id and job["name"] == "lf" and job["gpu_count"] == 1
    assert job["spec"]["data"]["dataset"] == ["identity", "alpaca_en_demo"]
    assert job["spec"]["method"]["lora_target"] == ["all"]
    assert job["spec"]["training"]["learning_rate"] == pytest.approx(1e-4)
    assert enqueued == [job["id"]]


def test_invalid_spec_names_the_field(
    client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]
) -> None:
    before = job_folders(world)
    response = create(client, registered, spec(method={"lora_rnak": 4}))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "lora_rnak" and "lora_rank" in error["message"]
    response = create(client, registered, spec(training={"learning_rate": -1}))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["learning_rate"]
    assert enqueued == [] and count_jobs(world, registered.id) == 0 and job_folders(world) == before


def test_unknown_names_and_server_paths(
    client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]
) -> None:
    cases = [
        (spec(model={"model_name_or_path": "gpt-9"}), "model_name_or_path"),
        (spec(data={"dataset": ["nope"]}), "dataset"),
        (spec(data={"dataset": ["greetings@7"]}), "dataset"),
        (spec(training={"resume_from_checkpoint": "/etc"}), "resume_from_checkpoint"),
        (spec(data={"tokenized_path": "/tmp/x"}), "tokenized_path"),
        (spec(model={"hf_hub_token": "hf_secret"}), "hf_hub_token"),
    ]
    for body, field in cases:
        response = create(client, registered, body)
        assert response.status_code == 422, body
        assert [error["field"] for error in response.json()["errors"]] == [field]
    response = create(client, registered, spec(), experiment_id="missing")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "experiment_id"
    assert enqueued == [] and count_jobs(world, registered.id) == 0


def test_invalid_data_names_file_row_and_field(
    client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]
) -> None:
    world.dataset(registered.id, "broken", {"rows.json": BAD_ROWS})
    before = job_folders(world)
    response = create(client, registered, spec(data={"dataset": ["greetings", "broken"]}))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["kind"] == "invalid_data"
    assert (error["dataset"], error["file"], error["row"], error["field"]) == ("broken", "rows.json", 2, "output")
    world.dataset(registered.id, "empty", {"empty.json": "[]"})
    response = create(client, registered, spec(data={"dataset": ["empty"]}))
    assert response.status_code == 422 and "no usable row" in response.json()["errors"][0]["message"]
    world.dataset(registered.id, "lost", {"here.json": GOOD_ROWS}, entry={"file_name": "gone.json"})
    response = create(client, registered, spec(data={"dataset": ["lost"]}))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "dataset"
    assert "gone.json" in response.text and str(world.settings.storage_root) not in response.text
    # nothing written, nothing queued
    assert enqueued == [] and count_jobs(world, registered.id) == 0 and job_folders(world) == before


def test_pinned_version_and_lineage(
    client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]
) -> None:
    second = world.dataset(registered.id, "greetings", {"train.json": GOOD_ROWS.replace("Hi!", "Hello!")})
    latest = create(client, registered, spec()).json()
    pinned = create(client, registered, spec(data={"dataset": ["greetings@1"]})).json()
    assert latest["dataset_versions"][0]["dataset_version_id"] == second.id
    assert pinned["dataset_versions"][0]["name"] == "greetings@1"
    assert pinned["dataset_versions"][0]["dataset_version_id"] != second.id
    assert len(enqueued) == 2


def test_idempotency_key(client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]) -> None:
    headers = {**registered.owner.headers, "Idempotency-Key": "create-once"}
    body = {"spec": spec(), "project_id": registered.id}
    first = client.post("/api/jobs", json=body, headers=headers)
    again = client.post("/api/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert enqueued == [first.json()["id"]] and count_jobs(world, registered.id) == 1


def test_list_filters_and_cursor_pagination(
    client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]
) -> None:
    world.model(registered.id, "other", path="/models/other")
    experiment = client.post(
        f"/api/projects/{registered.id}/experiments", json={"name": "sweep"}, headers=registered.owner.headers
    ).json()
    ids = [create(client, registered, spec(), name=f"run {n}").json()["id"] for n in range(4)]
    in_experiment = create(client, registered, spec(), name="tuned", experiment_id=experiment["id"]).json()["id"]
    other_spec = spec(model={"model_name_or_path": "other"}, method={"lora_rank": 64})
    other_model = create(client, registered, other_spec).json()
    with world.database.session() as session:
        session.get_one(Job, ids[0]).status = JobStatus.FAILED
        session.commit()

    def listed(**params: Any) -> list[str]:
        response = client.get("/api/jobs", params=params, headers=registered.owner.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed(status="failed") == [ids[0]]
    assert set(listed(status=["failed", "queued"])) == {*ids, in_experiment, other_model["id"]}
    assert listed(experiment_id=experiment["id"]) == [in_experiment]
    assert listed(model="other") == [other_model["id"]]
    assert listed(model=other_model["base_model_id"]) == [other_model["id"]]
    assert listed(q="tuned") == [in_experiment]
    assert listed(q="models/other") == [other_model["id"]]  # found in the spec
    assert listed(q="100%") == []

    everything = listed(project_id=registered.id)
    assert len(everything) == 6
    pages: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "project_id": registered.id}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/jobs", params=params, headers=registered.owner.headers).json()
        pages += [item["id"] for item in page["items"]]
        if len(pages) == 2:  # a job created between pages shows up on no later page
            create(client, registered, spec(), name="late")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == everything
    assert client.get("/api/jobs", params={"cursor": "garbage"}, headers=registered.owner.headers).status_code == 422


def test_cancel(client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]) -> None:
    job = create(client, registered, spec()).json()
    response = client.post(f"/api/jobs/{job['id']}/cancel", headers=registered.owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled" and response.json()["finished_at"]
    events = client.get(f"/api/jobs/{job['id']}/events", headers=registered.owner.headers).json()["events"]
    assert [(e["seq"], e["type"], e["status"]) for e in events] == [(1, "status", "cancelled")]
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=registered.owner.headers).status_code == 409

    running = world.job(registered.id, JobStatus.RUNNING)
    response = client.post(f"/api/jobs/{running}/cancel", headers=registered.owner.headers)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)


def test_resume_and_retry(client: TestClient, world: Catalog, registered: ProjectHandle, enqueued: list[str]) -> None:
    job = create(client, registered, spec()).json()
    assert client.post(f"/api/jobs/{job['id']}/resume", headers=registered.owner.headers).status_code == 409  # queued
    with world.database.session() as session:
        row = session.get_one(Job, job["id"])
        row.status, row.attempt, row.last_seq = JobStatus.FAILED, 1, 4
        session.commit()
    no_checkpoint = client.post(f"/api/jobs/{job['id']}/resume", headers=registered.owner.headers)
    assert no_checkpoint.status_code == 409 and "checkpoint" in no_checkpoint.json()["detail"]
    for step in (2, 4):
        path = f"jobs/{job['id']}/output/checkpoint-{step}"
        (world.settings.storage_root / path).mkdir(parents=True)
        with world.database.session() as session:
            session.add(Checkpoint(job_id=job["id"], step=step, path=path))
            session.commit()
    response = client.post(f"/api/jobs/{job['id']}/resume", headers=registered.owner.headers)
    assert response.status_code == 200, response.text
    resumed = response.json()
    assert resumed["status"] == "queued" and resumed["resume_from"] == f"jobs/{job['id']}/output/checkpoint-4"
    assert resumed["last_seq"] == 5 and enqueued == [job["id"], job["id"]]
    assert client.post(f"/api/jobs/{job['id']}/resume", headers=registered.owner.headers).status_code == 409

    client.post(f"/api/jobs/{job['id']}/cancel", headers=registered.owner.headers)
    response = client.post(f"/api/jobs/{job['id']}/retry", headers=registered.owner.headers)
    assert response.status_code == 201, response.text
    retried = response.json()
    assert retried["parent_job_id"] == job["id"] and retried["status"] == "queued"
    assert retried["dataset_versions"] == job["dataset_versions"]
    assert retried["spec"]["data"]["dataset_dir"].endswith(f"jobs/{retried['id']}/data")
    assert retried["spec"]["method"] == job["spec"]["method"]
    assert enqueued[-1] == retried["id"]


def test_logs_metrics_checkpoints_and_artifacts(client: TestClient, world: Catalog, registered: ProjectHandle) -> None:
    job_id = world.job(registered.id, JobStatus.SUCCEEDED)
    root = world.settings.storage_root
    (root / f"jobs/{job_id}/output/adapter").mkdir(parents=True)
    (root / f"jobs/{job_id}/output/adapter/adapter_config.json").write_text('{"r": 4}')
    (root / f"jobs/{job_id}/output/adapter/weights.bin").write_bytes(bytes(range(256)) * 10)
    (root / f"jobs/{job_id}/output/results.json").write_text('{"loss": 1.5}')
    with world.database.session() as session:
        session.add_all([LogLine(job_id=job_id, seq=n, attempt=1, line=f"line {n}") for n in range(1, 6)])
        session.add_all([Metric(job_id=job_id, step=n, attempt=1, values={"loss": 3.0 / n}) for n in range(1, 4)])
        session.add_all(
            [
                Checkpoint(job_id=job_id, step=1, path=f"jobs/{job_id}/output/checkpoint-1", deleted=True),
                Checkpoint(job_id=job_id, step=3, path=f"jobs/{job_id}/output/checkpoint-3"),
                Artifact(job_id=job_id, name="adapter", kind="adapter", path=f"jobs/{job_id}/output/adapter"),
                Artifact(job_id=job_id, name="results", kind="results", path=f"jobs/{job_id}/output/results.json"),
                Artifact(job_id=job_id, name="escape", kind="results", path="../../etc/passwd"),
            ]
        )
        session.commit()
    base, headers = f"/api/jobs/{job_id}", registered.owner.headers
    logs = client.get(f"{base}/logs", params={"after": 2, "limit": 2}, headers=headers).json()
    assert [line["line"] for line in logs["lines"]] == ["line 3", "line 4"] and logs["next_after"] == 4
    metrics = client.get(f"{base}/metrics", params={"after_step": 1}, headers=headers).json()
    assert [item["step"] for item in metrics["items"]] == [2, 3] and metrics["next_after_step"] == 3
    assert [c["step"] for c in client.get(f"{base}/checkpoints", headers=headers).json()] == [3]
    listed = client.get(f"{base}/artifacts", headers=headers).json()
    assert [a["name"] for a in listed] == ["adapter", "escape", "results"]

    assert client.get(f"{base}/artifacts/results", headers=headers).json() == {"loss": 1.5}
    archive = client.get(f"{base}/artifacts/adapter", headers=headers)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert sorted(opened.namelist()) == ["adapter_config.json", "weights.bin"]
        assert opened.read("weights.bin") == bytes(range(256)) * 10
    assert client.get(f"{base}/artifacts/escape", headers=headers).status_code == 404
    assert client.get(f"{base}/artifacts/missing", headers=headers).status_code == 404


def test_other_projects_get_404_everywhere(
    client: TestClient, world: Catalog, factory: Factory, registered: ProjectHandle, enqueued: list[str]
) -> None:
    job = create(client, registered, spec()).json()
    stranger = factory.project().owner
    viewer = factory.user()
    factory.member(registered, viewer, Role.VIEWER)
    job_id = job["id"]
    (world.settings.storage_root / f"jobs/{job_id}/output").mkdir(parents=True)
    (world.settings.storage_root / f"jobs/{job_id}/output/adapter.bin").write_bytes(b"weights")
    with world.database.session() as session:
        session.add(Artifact(job_id=job_id, name="adapter", kind="adapter", path=f"jobs/{job_id}/output/adapter.bin"))
        session.commit()
    reads = ["", "/spec", "/logs", "/metrics", "/events", "/checkpoints", "/artifacts", "/artifacts/adapter"]
    writes = ["/cancel", "/resume", "/retry"]
    for suffix in reads:
        assert client.get(f"/api/jobs/{job_id}{suffix}", headers=stranger.headers).status_code == 404, suffix
        assert client.get(f"/api/jobs/{job_id}{suffix}", headers=viewer.headers).status_code == 200, suffix
    for suffix in writes:
        assert client.post(f"/api/jobs/{job_id}{suffix}", headers=stranger.headers).status_code == 404, suffix
        assert client.post(f"/api/jobs/{job_id}{suffix}", headers=viewer.headers).status_code == 403, suffix
    assert client.get("/api/jobs", headers=stranger.headers).json()["items"] == []
    response = client.get("/api/jobs", params={"project_id": registered.id}, headers=stranger.headers)
    assert response.status_code == 404
    body = {"spec": spec(), "project_id": registered.id}
    assert client.post("/api/jobs", json=body, headers=stranger.headers).status_code == 404
    assert client.get(f"/api/jobs/{job_id}").status_code == 401
    with world.database.session() as session:
        assert session.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)) == 0
        assert session.get_one(Job, job_id).status == JobStatus.QUEUED
