"""``/v1/score`` on the real app (PostgreSQL, reward models loaded with the engine's loader): scores of texts
and (prompt, response) pairs from a registered sequence-classification model and from a reward model trained
with stage rm, OpenAI error shapes, reward models marked in /v1/models and refused by chat."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import Factory, ProjectHandle, bearer
from tests.serving.support import register_model, serving_app
from tunery.server.api.app import create_app
from tunery.server.config import Settings
from tunery.server.db.base import new_id, utcnow
from tunery.server.db.models import Job, JobStatus
from tunery.server.db.session import Database
from tunery.serving.config import ServingConfig
from tunery.serving.manager import EngineManager

TEXTS = ["A helpful, polite answer.", "Go away.", "A helpful, polite answer."]


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    app = serving_app(settings)
    app.state.serving_manager = EngineManager(ServingConfig(engine="hf", idle_seconds=3600))
    with TestClient(app) as test_client:
        yield test_client


def sequence_classifier(base: Path, folder: Path) -> Path:
    """The tiny model as a one-label sequence classifier (random score head), saved with its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(5)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def score(client: TestClient, key: dict[str, str], model: str, **body: Any) -> Any:
    return client.post("/v1/score", json={"model": model, **body}, headers=key)


def test_scores_from_a_registered_reward_model(
    client: TestClient, factory: Factory, database: Database, settings: Settings, tiny_llama: Path
) -> None:
    from tunery.engine.train.reward_model import load_reward_model

    project = factory.project()
    key = bearer(factory.api_key(project.owner))
    folder = sequence_classifier(tiny_llama, settings.model_dirs[0] / "judge")
    registered = client.post(
        f"/api/projects/{project.id}/models", json={"name": "judge", "path_or_hub_id": str(folder)}, headers=key
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["reward_model"] is True and registered.json()["architecture"].endswith("Classification")
    register_model(database, project.id, "tiny", tiny_llama)
    cards = {card["id"]: card for card in client.get("/v1/models", headers=key).json()["data"]}
    assert (cards["judge"]["reward_model"], cards["tiny"]["reward_model"]) == (True, False)

    reference = load_reward_model(str(folder))
    texts = score(client, key, "judge", input=TEXTS)
    assert texts.status_code == 200, texts.text
    body = texts.json()
    assert body["object"] == "list" and body["model"] == "judge"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(item["object"] == "score" for item in body["data"])
    values = [item["score"] for item in body["data"]]
    assert values == pytest.approx(reference.score_texts(None, TEXTS), abs=1e-5)
    assert values[0] == pytest.approx(values[2], abs=1e-5) and abs(values[0] - values[1]) > 1e-3
    tokens = sum(len(reference.encode(None, text)) for text in TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}

    pairs = [{"prompt": "Hi", "response": "Hello!"}, {"prompt": "Hi", "response": "Go away."}]
    scored = score(client, key, "judge", pairs=pairs)
    assert scored.status_code == 200, scored.text
    expected = reference.score_texts(["Hi", "Hi"], ["Hello!", "Go away."])
    assert [item["score"] for item in scored.json()["data"]] == pytest.approx(expected, abs=1e-5)

    not_rm = score(client, key, "tiny", input=TEXTS)
    assert not_rm.status_code == 400
    error = not_rm.json()["error"]
    assert error["param"] == "model" and error["code"] == "not_a_reward_model" and "'tiny'" in error["message"]
    assert error["type"] == "invalid_request_error"
    for bad in ({"input": TEXTS, "pairs": pairs}, {}, {"input": []}, {"input": [""]}, {"input": TEXTS, "n": 2}):
        answer = score(client, key, "judge", **bad)
        assert answer.status_code == 400 and "error" in answer.json(), (bad, answer.text)
    assert score(client, key, "missing", input=TEXTS).json()["error"]["code"] == "model_not_found"
    outsider = bearer(factory.api_key(factory.project().owner))
    assert score(client, outsider, "judge", input=TEXTS).status_code == 404
    chat = client.post(
        "/v1/chat/completions", json={"model": "judge", "messages": [{"role": "user", "content": "Hi"}]}, headers=key
    )
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "reward_model"
    deploy = client.post("/api/deployments", json={"model": "judge"}, headers=key)
    assert deploy.status_code == 400 and "/v1/score" in deploy.json()["detail"]


def test_openapi_declares_the_score_route(settings: Settings) -> None:
    route = create_app(settings).openapi()["paths"]["/v1/score"]["post"]
    assert route["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScoreRequest")
    answers = route["responses"]
    assert answers["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScoreResponse")
    for status in ("400", "401", "404", "503"):
        assert answers[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse"), status


# ----- a reward model trained with stage rm ----------------------------------------------------------------
TOPICS = ["apples", "rivers", "music", "chess", "bread", "stars", "trains", "gardens", "clocks", "paint"]
HELD_OUT = ["oceans", "bicycles", "poems"]


def pair(topic: str, variant: int) -> dict[str, str]:
    """Learnable preference: a helpful answer about the topic beats a refusal."""
    rude = ["No. Go away.", "I will not answer that.", "Ask someone else."][variant % 3]
    return {
        "instruction": f"Tell me something about {topic}.",
        "input": "",
        "chosen": f"Sure! Here is a helpful fact about {topic}.",
        "rejected": rude,
    }


def train_reward_model(tiny: Path, data_dir: Path, output: Path) -> None:
    from tunery.engine.events import EventSink
    from tunery.engine.train.runner import run_training
    from tunery.spec import JobSpec
    from tunery.spec.events import EXIT_SUCCEEDED

    data_dir.mkdir(parents=True)
    rows = [pair(topic, variant) for topic in TOPICS for variant in range(3)]
    (data_dir / "prefs.json").write_text(json.dumps(rows), encoding="utf-8")
    columns = {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}
    info = {"prefs": {"file_name": "prefs.json", "ranking": True, "columns": columns}}
    (data_dir / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    spec = JobSpec.from_mapping({
        "model_name_or_path": str(tiny), "stage": "rm", "finetuning_type": "lora", "lora_target": "all",
        "lora_rank": 8, "dataset": "prefs", "dataset_dir": str(data_dir), "template": "llama3", "cutoff_len": 64,
        "output_dir": str(output), "per_device_train_batch_size": 6, "learning_rate": 5e-3, "max_steps": 25,
        "logging_steps": 5, "save_steps": 1000, "lr_scheduler_type": "constant", "seed": 3,
        "disable_gradient_checkpointing": True, "use_cpu": True,
    })  # fmt: skip
    stream = io.StringIO()
    assert run_training(spec, EventSink(stream)) == EXIT_SUCCEEDED, stream.getvalue()[-3000:]


def finished_rm_job(database: Database, settings: Settings, project: ProjectHandle, model_id: str, tiny: Path) -> str:
    job_id = new_id()
    output = settings.storage_root / "jobs" / job_id / "output"
    train_reward_model(tiny, settings.storage_root / "jobs" / job_id / "data", output)
    spec = {
        "model": {"model_name_or_path": str(tiny)},
        "method": {"stage": "rm", "finetuning_type": "lora"},
        "data": {"template": "llama3"},
    }
    with database.session() as session:
        session.add(
            Job(
                id=job_id,
                project_id=project.id,
                base_model_id=model_id,
                spec=spec,
                status=JobStatus.SUCCEEDED,
                output_dir=f"jobs/{job_id}/output",
                finished_at=utcnow(),
            )
        )
        session.commit()
    return job_id


def test_a_trained_reward_model_ranks_held_out_pairs(
    client: TestClient, factory: Factory, database: Database, settings: Settings, tiny_llama: Path
) -> None:
    project = factory.project()
    key = bearer(factory.api_key(project.owner))
    model_id = register_model(database, project.id, "tiny", tiny_llama)
    job_id = finished_rm_job(database, settings, project, model_id, tiny_llama)
    reward_model = f"ft:tiny:{project.slug}:{job_id}"
    cards = {card["id"]: card for card in client.get("/v1/models", headers=key).json()["data"]}
    assert cards[reward_model]["reward_model"] is True and cards["tiny"]["reward_model"] is False

    held_out = [pair(topic, variant) for topic in HELD_OUT for variant in range(3)]
    pairs = [
        {"prompt": row["instruction"], "response": row[side]} for row in held_out for side in ("chosen", "rejected")
    ]
    answer = score(client, key, reward_model, pairs=pairs)
    assert answer.status_code == 200, answer.text
    values = [item["score"] for item in answer.json()["data"]]
    margins = [chosen - rejected for chosen, rejected in zip(values[::2], values[1::2], strict=True)]
    assert all(margin > 0 for margin in margins), margins
    assert sum(margins) / len(margins) > 1.0, margins  # learned, not a lucky random head

    chat = client.post(
        "/v1/chat/completions",
        json={"model": reward_model, "messages": [{"role": "user", "content": "Hi"}]},
        headers=key,
    )
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "reward_model"
