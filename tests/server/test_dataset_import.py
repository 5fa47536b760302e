"""Importing a hub dataset as a dataset version, through the real API and a real `tunery worker`, with no
network: the worker's Hugging Face cache is prepared by the test (a cached dataset imports offline, an
uncached one fails with the cache folders named)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.engine.test_data_hub import README, fake_snapshot
from tests.server.factories import Factory, ProjectHandle, UserHandle
from tests.server.worker_support import RedisServer, Stack, wait_for
from tunery.server.api.app import create_app
from tunery.server.services import job_inputs

ROWS = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(3)]


def _jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@pytest.fixture
def stack(pg_url: str, tmp_path: Path, redis_server: RedisServer) -> Iterator[Stack]:
    hub = tmp_path / "hf" / "hub"
    fake_snapshot(
        hub,
        "org/name",
        "c" * 40,
        {"README.md": README, "data/train.jsonl": _jsonl(ROWS), "data/test.jsonl": _jsonl(ROWS[:1])},
        refs=("main",),
    )
    env = {
        "HF_HUB_CACHE": str(hub),
        "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }
    stack = Stack(tmp_path, pg_url, redis_server.url, TUNERY_REDIS_URL=redis_server.url, **env)
    yield stack
    stack.close()


class World:
    def __init__(self, stack: Stack) -> None:
        self.project: ProjectHandle = Factory(stack.database, stack.settings).project()
        self.owner: UserHandle = self.project.owner
        self.client = TestClient(create_app(stack.settings))
        answer = self.client.post(
            f"/api/projects/{self.project.id}/datasets", json={"name": "hubbed"}, headers=self.owner.headers
        )
        assert answer.status_code == 201, answer.text
        self.dataset_id = answer.json()["id"]

    def start(self, **body: Any) -> Any:
        url = f"/api/datasets/{self.dataset_id}/versions/import-hub"
        return self.client.post(url, json=body, headers=self.owner.headers)

    def version(self, number: int) -> dict[str, Any]:
        answer = self.client.get(f"/api/datasets/{self.dataset_id}/versions/{number}", headers=self.owner.headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def finished(self, number: int) -> dict[str, Any]:
        return wait_for(
            lambda: (version := self.version(number))["status"] != "importing" and version, 300, "the import"
        )


def test_import_from_the_hub_cache_through_the_worker(stack: Stack) -> None:
    world = World(stack)
    stack.worker("w1", queues="default")
    answer = world.start(repo="org/name", split="train")
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert (started["version"], started["status"]) == (1, "importing")
    assert started["source"] == {
        "hub": "hf", "repo": "org/name", "subset": None, "split": "train", "revision": None, "token_secret": None,
    }  # fmt: skip
    assert started["progress"]["phase"] == "queued"
    assert started["info"] == {"file_name": "data.jsonl"}

    done = world.finished(1)
    assert (done["status"], done["rows_total"], done["rows_valid"]) == ("valid", 3, 3)
    assert done["progress"] == {"phase": "done", "bytes_done": 0, "rows_done": 3, "rows_total": 3}
    assert len(done["content_hash"]) == 64 and done["size_bytes"] > 0
    folder = stack.storage_root / "datasets" / world.dataset_id / "v1"
    assert [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()] == ROWS
    assert json.loads((folder / "dataset_info.json").read_text()) == {"hubbed": {"file_name": "data.jsonl"}}

    # another split, and a dataset the cache lacks: failed, with the dataset and the cache folders named
    assert world.start(repo="org/name", split="test").status_code == 202
    assert world.start(repo="org/missing").status_code == 202
    assert world.finished(2)["rows_total"] == 1
    failed = world.finished(3)
    assert failed["status"] == "failed" and failed["progress"]["phase"] == "failed"
    report = world.client.get(f"/api/datasets/{world.dataset_id}/versions/3/report", headers=world.owner.headers).json()
    assert "'org/missing'" in report["error"] and "not in the local cache" in report["error"]
    assert str(Path(stack.env["HF_HUB_CACHE"])) in report["error"]
    assert not (stack.storage_root / "datasets" / world.dataset_id / "v3").exists()

    # jobs use the newest usable version: the failed v3 is skipped
    with stack.database.session() as session:
        found, problems = job_inputs.resolve_datasets(session, world.project.id, ["hubbed", "hubbed@3"], "dataset")
    assert found["hubbed"].version == 2
    assert problems and "no usable version 3" in problems[0].message


def test_import_requests_are_checked(stack: Stack) -> None:
    world = World(stack)
    assert world.start(repo="not a repo").status_code == 422
    answer = world.start(repo="org/name", entry={"file_name": "x.json"})
    assert answer.status_code == 422 and "file_name is set by the import" in answer.json()["detail"]
    answer = world.start(repo="org/name", token_secret="HF_TOKEN")
    assert answer.status_code == 422 and "no secret 'HF_TOKEN'" in answer.json()["detail"]
    assert world.start(repo="org/name", stage="nope").status_code == 422
    answer = world.start(repo="org/name", hub="ms", entry={"formatting": "sharegpt"}, stage="sft")
    assert answer.status_code == 202, answer.text
    assert answer.json()["info"] == {"file_name": "data.jsonl", "formatting": "sharegpt"}
