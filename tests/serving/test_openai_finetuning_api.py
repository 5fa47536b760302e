"""OpenAI files and fine-tuning endpoints without training: row-level validation, preference files,
project scoping, jobs as views over /api/jobs (queued, listed, cancelled), refused methods."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import Factory, bearer
from tests.serving.support import register_model, serving_app
from tunery.server.config import Settings
from tunery.server.db.session import Database

CHAT_ROWS = [
    {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ]
    },
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
]
PREFERENCE_ROWS = [
    {
        "input": {"messages": [{"role": "user", "content": "Hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
    }
]


def jsonl(rows: list[Any]) -> bytes:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(serving_app(settings)) as test_client:
        yield test_client


def upload(client: TestClient, key: dict[str, str], name: str, data: bytes, **headers: str) -> Any:
    files = {"file": (name, data, "application/jsonl")}
    return client.post("/v1/files", files=files, data={"purpose": "fine-tune"}, headers={**key, **headers})


def test_files_are_validated_row_by_row_and_scoped(client: TestClient, factory: Factory, tiny_llama: Path) -> None:
    project = factory.project()
    key = bearer(factory.api_key(project.owner))
    outsider = bearer(factory.api_key(factory.project().owner))
    bad = upload(
        client, key, "bad.jsonl", jsonl([CHAT_ROWS[0], {"messages": [{"role": "robot", "content": "x"}]}, "{nope"])
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["type"] == "invalid_request_error" and "bad.jsonl" in error["message"]
    assert {(e["row"], e["field"]) for e in error["errors"]} == {(3, "(line)")}
    bad_role = upload(
        client, key, "roles.jsonl", jsonl([CHAT_ROWS[0], {"messages": [{"role": "robot", "content": "x"}]}])
    )
    assert bad_role.status_code == 400
    (row_error,) = bad_role.json()["error"]["errors"]
    assert row_error["row"] == 2 and "role" in row_error["field"] and "robot" in row_error["message"]
    wrong_purpose = client.post(
        "/v1/files", files={"file": ("a.jsonl", jsonl(CHAT_ROWS))}, data={"purpose": "batch"}, headers=key
    )
    assert wrong_purpose.status_code == 400 and "purpose" in wrong_purpose.json()["error"]["message"]

    chat = upload(client, key, "chat.jsonl", jsonl(CHAT_ROWS)).json()
    pairs = upload(client, key, "pairs.jsonl", jsonl(PREFERENCE_ROWS)).json()
    assert chat["object"] == "file" and chat["bytes"] == len(jsonl(CHAT_ROWS)) and chat["status"] == "processed"
    listed = client.get("/v1/files", headers=key).json()
    assert [f["id"] for f in listed["data"]] == [pairs["id"], chat["id"]] and listed["has_more"] is False
    assert client.get(f"/v1/files/{pairs['id']}/content", headers=key).content == jsonl(PREFERENCE_ROWS)
    assert client.get(f"/v1/files/{chat['id']}", headers=outsider).status_code == 404
    assert client.get("/v1/files", headers=outsider).json()["data"] == []
    native = client.get(f"/api/projects/{project.id}/datasets", headers=key).json()
    assert {d["name"] for d in native} == {chat["id"], pairs["id"]}
    assert client.delete(f"/v1/files/{pairs['id']}", headers=key).json() == {
        "id": pairs["id"],
        "object": "file",
        "deleted": True,
    }
    assert client.get(f"/v1/files/{pairs['id']}", headers=key).status_code == 404


def test_fine_tuning_jobs_are_views_over_platform_jobs(
    client: TestClient, factory: Factory, database: Database, tiny_llama: Path
) -> None:
    project = factory.project()
    second = factory.project(owner=project.owner)
    key = bearer(factory.api_key(project.owner))
    register_model(database, project.id, "tiny", tiny_llama)
    in_project = {"OpenAI-Project": project.slug}
    no_header = upload(client, key, "chat.jsonl", jsonl(CHAT_ROWS))
    assert no_header.status_code == 400 and "OpenAI-Project" in no_header.json()["error"]["message"]
    chat = upload(client, key, "chat.jsonl", jsonl(CHAT_ROWS), **in_project).json()
    pairs = upload(client, key, "pairs.jsonl", jsonl(PREFERENCE_ROWS), **in_project).json()

    def create(**body: Any) -> Any:
        return client.post(
            "/v1/fine_tuning/jobs",
            json={"model": "tiny", "training_file": chat["id"], **body},
            headers={**key, **in_project},
        )

    refused = create(training_file=pairs["id"], method={"type": "reinforcement"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "method.type"
    assert create(model="missing").status_code == 400
    assert create(training_file="file-nope").status_code == 404
    assert create(hyperparameters={"n_epochs": 0}).status_code == 400
    assert "n_epochs" in create(hyperparameters={"n_epochs": "lots"}).json()["error"]["message"]

    created = create(suffix="mine", metadata={"k": "v"}, hyperparameters={"n_epochs": 2, "batch_size": 1})
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["object"] == "fine_tuning.job" and job["status"] == "queued" and job["fine_tuned_model"] is None
    assert job["hyperparameters"] == {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 1}
    assert (
        job["training_file"] == chat["id"] and job["metadata"] == {"k": "v"} and job["user_provided_suffix"] == "mine"
    )
    native = client.get(f"/api/jobs/{job['id'].removeprefix('ftjob-')}", headers=key).json()
    assert native["status"] == "queued" and native["name"] == "mine"
    spec = client.get(f"/api/jobs/{native['id']}/spec", headers=key).json()
    assert spec["training"]["num_train_epochs"] == 2 and spec["data"]["template"] == "llama3"

    assert [j["id"] for j in client.get("/v1/fine_tuning/jobs", headers=key).json()["data"]] == [job["id"]]
    other = client.get("/v1/fine_tuning/jobs", headers={**key, "OpenAI-Project": second.slug}).json()
    assert other["data"] == []
    cancelled = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=key).json()
    assert cancelled["status"] == "cancelled"
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events", headers=key).json()["data"]
    assert events[0]["message"] == "The job was cancelled" and events[0]["object"] == "fine_tuning.job.event"
    again = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=key)
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict_error"
    used = client.delete(f"/v1/files/{chat['id']}", headers=key)
    assert used.status_code == 409
    assert client.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", headers=key).json()["data"] == []
