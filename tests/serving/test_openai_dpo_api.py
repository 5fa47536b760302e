"""OpenAI fine-tuning with method dpo, without training: preference files feed it, chat files do not, its
hyperparameters become the spec's keys, other method types and misplaced hyperparameters are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import Factory, bearer
from tests.serving.support import register_model, serving_app
from tests.serving.test_openai_finetuning_api import CHAT_ROWS, PREFERENCE_ROWS, jsonl, upload
from tunery.server.config import Settings
from tunery.server.db.session import Database


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(serving_app(settings)) as test_client:
        yield test_client


def test_dpo_jobs_take_preference_files_and_beta(
    client: TestClient, factory: Factory, database: Database, tiny_llama: Path
) -> None:
    project = factory.project()
    key = bearer(factory.api_key(project.owner))
    register_model(database, project.id, "tiny", tiny_llama)
    chat = upload(client, key, "chat.jsonl", jsonl(CHAT_ROWS)).json()
    pairs = upload(client, key, "pairs.jsonl", jsonl(PREFERENCE_ROWS * 3)).json()
    native = {d["name"]: d["stages"] for d in client.get(f"/api/projects/{project.id}/datasets", headers=key).json()}
    assert native == {chat["id"]: ["sft", "ppo", "grpo"], pairs["id"]: ["rm", "dpo"]}

    def create(training_file: str, method: dict[str, Any]) -> Any:
        body = {"model": "tiny", "training_file": training_file, "method": method}
        return client.post("/v1/fine_tuning/jobs", json=body, headers=key)

    dpo = {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 0.5, "beta": 0.25}
    refusals = [
        (create(chat["id"], {"type": "dpo"}), "training_file", "preference file"),
        (create(pairs["id"], {"type": "supervised"}), "training_file", "chat file"),
        (create(pairs["id"], {"type": "reinforcement"}), "method.type", "supervised, dpo"),
        (
            create(pairs["id"], {"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}),
            "hyperparameters",
            "beta",
        ),
        (create(pairs["id"], {"type": "dpo", "dpo": {"hyperparameters": {"beta": 50}}}), None, "beta"),
        (create(pairs["id"], {"type": "dpo", "supervised": {}}), "method.supervised", "method 'dpo'"),
    ]
    for answer, param, words in refusals:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error" and words in error["message"], error
        if param:
            assert error["param"] == param, error

    created = create(pairs["id"], {"type": "dpo", "dpo": {"hyperparameters": dpo}})
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["method"] == {"type": "dpo", "dpo": {"hyperparameters": dpo}}
    assert job["status"] == "queued" and job["training_file"] == pairs["id"]
    spec = client.get(f"/api/jobs/{job['id'].removeprefix('ftjob-')}/spec", headers=key).json()
    assert spec["method"]["stage"] == "dpo" and spec["method"]["pref_beta"] == 0.25
    assert spec["training"]["learning_rate"] == pytest.approx(5e-5)
    listed = client.get("/v1/fine_tuning/jobs", headers=key).json()["data"]
    assert [(item["id"], item["method"]["type"]) for item in listed] == [(job["id"], "dpo")]
