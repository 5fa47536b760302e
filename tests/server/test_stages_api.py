"""The stage catalog through the API: GET /api/stages, the stages a dataset version can feed, and jobs refused
(422 naming the dataset and what it can feed) when a dataset's rows do not have the stage's shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import ProjectHandle
from tests.server.uploads_support import ALPACA_ROWS, CONTENT_TYPE, multipart, rows
from tests.support.tiny_models import SHARED_DATA
from tunery.server.config import Settings
from tunery.spec.stages import STAGE_CATALOG, STAGE_NAMES


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from tunery.server.worker import queue

    sent: list[str] = []
    monkeypatch.setattr(queue, "enqueue_job", lambda job_id, *args, **kwargs: sent.append(job_id))
    return sent


def upload(client: TestClient, project: ProjectHandle, name: str, files: dict[str, bytes], **fields: str) -> Any:
    headers = project.owner.headers
    dataset = client.post(f"/api/projects/{project.id}/datasets", json={"name": name}, headers=headers).json()
    answer = client.post(
        f"/api/datasets/{dataset['id']}/versions",
        content=multipart(files, fields),
        headers={**headers, "Content-Type": CONTENT_TYPE},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def preference_files() -> tuple[dict[str, bytes], dict[str, str]]:
    pairs = json.loads((SHARED_DATA / "dpo_en_demo.json").read_text())[:4]
    entry = json.loads((SHARED_DATA / "dataset_info.json").read_text())["dpo_en_demo"]
    return {"dpo_en_demo.json": rows(pairs)}, {"entry": json.dumps(entry)}


def test_stages_lists_the_catalog(client: TestClient) -> None:
    answer = client.get("/api/stages")
    assert answer.status_code == 200
    stages = answer.json()
    assert [stage["name"] for stage in stages] == list(STAGE_NAMES)
    by_name = {stage["name"]: stage for stage in stages}
    for info in STAGE_CATALOG:
        assert by_name[info.name] == {
            "name": info.name,
            "title": info.title,
            "summary": info.summary,
            "data": info.data,
            "data_help": info.data_help,
            "options": list(info.options),
            "metrics": list(info.metrics),
            "reward_model": info.reward_model,
        }
    assert by_name["rm"]["reward_model"] and not by_name["dpo"]["reward_model"]
    assert "pref_beta" in by_name["dpo"]["options"] and by_name["dpo"]["data"] == "pairwise"
    assert "/api/stages" in client.get("/openapi.json").json()["paths"]


def test_versions_and_datasets_say_which_stages_they_feed(
    client: TestClient, project: ProjectHandle, settings: Settings
) -> None:
    chat = upload(client, project, "chat", {"train.json": rows(ALPACA_ROWS)})
    assert (chat["stage"], chat["stages"]) == ("sft", ["sft", "ppo", "grpo"])
    files, fields = preference_files()
    pairs = upload(client, project, "pairs", files, **fields)
    assert (pairs["stage"], pairs["status"], pairs["stages"]) == ("rm", "valid", ["rm", "dpo"])
    text = upload(client, project, "text", {"text.json": rows([{"text": "raw text"}])}, stage="pt")
    assert (text["status"], text["stages"]) == ("valid", ["pt"])
    listed = client.get(f"/api/projects/{project.id}/datasets", headers=project.owner.headers).json()
    assert {item["name"]: item["stages"] for item in listed} == {
        "chat": ["sft", "ppo", "grpo"],
        "pairs": ["rm", "dpo"],
        "text": ["pt"],
    }
    versions = client.get(f"/api/datasets/{pairs['dataset_id']}/versions", headers=project.owner.headers).json()
    assert versions[0]["stages"] == ["rm", "dpo"]
    empty = client.post(f"/api/projects/{project.id}/datasets", json={"name": "e"}, headers=project.owner.headers)
    assert empty.json()["stages"] == []


#: what a stage needs beyond the common keys to be a valid spec
STAGE_KEYS: dict[str, dict[str, Any]] = {"grpo": {"reward_funcs": ["exact_match"], "num_generations": 2}}


def job_body(project: ProjectHandle, stage: str, dataset: str) -> dict[str, Any]:
    return {
        "project_id": project.id,
        "spec": {
            "model": {"model_name_or_path": "tiny"},
            "data": {"dataset": [dataset], "cutoff_len": 128},
            "method": {"stage": stage, "finetuning_type": "lora", **STAGE_KEYS.get(stage, {})},
            "training": {"max_steps": 1, "output_dir": "saves/x", "per_device_train_batch_size": 2},
        },
    }


def test_jobs_refuse_datasets_of_the_wrong_shape(
    client: TestClient, project: ProjectHandle, enqueued: list[str]
) -> None:
    headers = project.owner.headers
    model = {"name": "tiny", "path_or_hub_id": "org/tiny", "template": "llama3"}
    assert client.post(f"/api/projects/{project.id}/models", json=model, headers=headers).status_code == 201
    upload(client, project, "chat", {"train.json": rows(ALPACA_ROWS)})
    files, fields = preference_files()
    upload(client, project, "pairs", files, **fields)

    to_sft = client.post("/api/jobs", json=job_body(project, "sft", "pairs"), headers=headers)
    assert to_sft.status_code == 422, to_sft.text
    [problem] = to_sft.json()["errors"]
    assert problem["dataset"] == "pairs" and problem["field"] == "dataset"
    assert "dataset 'pairs'" in problem["message"] and "it can feed: rm, dpo" in problem["message"]
    to_dpo = client.post("/api/jobs", json=job_body(project, "dpo", "chat"), headers=headers)
    assert to_dpo.status_code == 422
    assert "dataset 'chat'" in to_dpo.text and "it can feed: sft, ppo, grpo" in to_dpo.text
    assert "preference pairs" in to_dpo.json()["detail"].lower()
    assert enqueued == []

    for stage, dataset in (("dpo", "pairs"), ("rm", "pairs"), ("grpo", "chat")):
        created = client.post("/api/jobs", json=job_body(project, stage, dataset), headers=headers)
        assert created.status_code == 201, (stage, created.text)
    assert len(enqueued) == 3
