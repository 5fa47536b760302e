"""The /v1 serving API on the real app (PostgreSQL, transformers engine on the tiny model): model lists per
project, chat and completions whole and streamed, OpenAI error shapes, adapters sharing one engine,
deployments and idle engines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import Factory, bearer
from tests.serving.support import finished_job, make_adapter, register_model, serving_app
from tunery.server.config import Settings
from tunery.server.db.session import Database
from tunery.serving.config import ServingConfig
from tunery.serving.manager import EngineManager

GREEDY = {"temperature": 0, "max_tokens": 12}


class World:
    """Two projects with their owners' API keys: A has the tiny model and two fine-tunes of it."""

    def __init__(self, factory: Factory, database: Database, settings: Settings, tiny: Path, tmp: Path) -> None:
        self.tiny = str(tiny)
        self.a = factory.project()
        self.b = factory.project()
        self.key_a = bearer(factory.api_key(self.a.owner))
        self.key_b = bearer(factory.api_key(self.b.owner))
        model_id = register_model(database, self.a.id, "tiny", tiny)
        register_model(database, self.b.id, "other", tiny)
        self.jobs = [
            finished_job(database, settings, self.a.id, model_id, tiny, make_adapter(tiny, tmp / f"lora{i}", seed=i))
            for i in (1, 2)
        ]
        self.ft = [f"ft:tiny:{self.a.slug}:{job}" for job in self.jobs]


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    app = serving_app(settings)
    app.state.serving_manager = EngineManager(ServingConfig(engine="hf", idle_seconds=3600))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def world(factory: Factory, database: Database, settings: Settings, tiny_llama: Path, tmp_path: Path) -> World:
    return World(factory, database, settings, tiny_llama, tmp_path)


def chat(client: TestClient, key: dict[str, str], model: str, **body: Any) -> Any:
    body = {"messages": [{"role": "user", "content": "Hello, who are you?"}], **GREEDY, **body}
    return client.post("/v1/chat/completions", json={"model": model, **body}, headers=key)


def stream_chunks(client: TestClient, key: dict[str, str], path: str, body: dict[str, Any]) -> list[Any]:
    chunks: list[Any] = []
    with client.stream("POST", path, json={**body, "stream": True}, headers=key) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                chunks.append("[DONE]" if line == "data: [DONE]" else json.loads(line[6:]))
    return chunks


def test_each_key_lists_only_its_projects_models(client: TestClient, world: World) -> None:
    listed_a = {m["id"] for m in client.get("/v1/models", headers=world.key_a).json()["data"]}
    listed_b = {m["id"] for m in client.get("/v1/models", headers=world.key_b).json()["data"]}
    assert listed_a == {"tiny", *world.ft}
    assert listed_b == {"other"}

    for model in ("tiny", world.ft[0], f"{world.ft[0]}:ckpt-2"):
        answer = chat(client, world.key_b, model)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert error["code"] == "model_not_found" and error["param"] == "model" and model in error["message"]
    assert client.get(f"/v1/models/{world.ft[0]}", headers=world.key_b).status_code == 404
    assert client.get(f"/v1/models/{world.ft[0]}", headers=world.key_a).json()["owned_by"] == world.a.slug


def test_chat_whole_and_streamed_give_the_same_greedy_answer(client: TestClient, world: World) -> None:
    whole = chat(client, world.key_a, "tiny")
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("length", "stop")
    assert body["usage"]["completion_tokens"] <= 12 and body["usage"]["prompt_tokens"] > 5
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]

    request = {"model": "tiny", "messages": [{"role": "user", "content": "Hello, who are you?"}], **GREEDY}
    chunks = stream_chunks(
        client, world.key_a, "/v1/chat/completions", {**request, "stream_options": {"include_usage": True}}
    )
    assert chunks[-1] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == body["usage"]
    deltas = [c["choices"][0] for c in chunks[:-2]]
    assert deltas[0]["delta"]["role"] == "assistant"
    assert "".join(d["delta"].get("content") or "" for d in deltas) == choice["message"]["content"]
    assert deltas[-1]["finish_reason"] == choice["finish_reason"]
    assert all(c["object"] == "chat.completion.chunk" and c["usage"] is None for c in chunks[:-2])


def test_stop_strings_n_and_seed(client: TestClient, world: World) -> None:
    full = chat(client, world.key_a, "tiny", max_tokens=20).json()["choices"][0]["message"]["content"]
    word = full[3:6]
    stopped = chat(client, world.key_a, "tiny", max_tokens=20, stop=[word]).json()["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["message"]["content"] == full[: full.index(word)]

    sampled = {"temperature": 1.0, "top_p": 0.9, "seed": 11, "n": 3, "max_tokens": 8, "frequency_penalty": 0.5}
    first = chat(client, world.key_a, "tiny", **sampled).json()
    again = chat(client, world.key_a, "tiny", **sampled).json()
    texts = [c["message"]["content"] for c in first["choices"]]
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert texts == [c["message"]["content"] for c in again["choices"]]
    assert len(set(texts)) > 1


def test_text_completions(client: TestClient, world: World) -> None:
    body = {"model": "tiny", "prompt": ["The quick brown", "Hello"], "max_tokens": 6, "temperature": 0}
    answer = client.post("/v1/completions", json=body, headers=world.key_a).json()
    assert answer["object"] == "text_completion"
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    single = client.post("/v1/completions", json={**body, "prompt": "Hello"}, headers=world.key_a).json()
    assert single["choices"][0]["text"] == answer["choices"][1]["text"]
    chunks = stream_chunks(client, world.key_a, "/v1/completions", {**body, "prompt": "Hello"})
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == single["choices"][0]["text"]
    echo = client.post("/v1/completions", json={**body, "prompt": "Hello", "echo": True}, headers=world.key_a).json()
    assert echo["choices"][0]["text"] == "Hello" + single["choices"][0]["text"]


def test_errors_have_openai_shape(client: TestClient, world: World) -> None:
    no_auth = client.post("/v1/chat/completions", json={"model": "tiny", "messages": []})
    assert no_auth.status_code == 401 and no_auth.json()["error"]["type"] == "authentication_error"
    bad = chat(client, world.key_a, "tiny", temperature=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error" and bad.json()["error"]["param"] == "temperature"
    assert chat(client, world.key_a, "nope").json()["error"]["code"] == "model_not_found"
    assert chat(client, world.key_a, "tiny", logprobs=True, top_logprobs=21).json()["error"]["param"] == "top_logprobs"
    too_long = chat(client, world.key_a, "tiny", max_tokens=10_000)
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    ends_with_answer = chat(client, world.key_a, "tiny", messages=[{"role": "assistant", "content": "hi"}])
    assert ends_with_answer.status_code == 400 and "user" in ends_with_answer.json()["error"]["message"]
    score = client.post("/v1/score", json={"model": "tiny", "input": ["hi"]}, headers=world.key_a)
    assert score.status_code == 400 and score.json()["error"]["code"] == "not_a_reward_model"


def test_adapters_of_one_base_share_one_engine(client: TestClient, world: World) -> None:
    answers = {model: chat(client, world.key_a, model).json() for model in ("tiny", *world.ft)}
    texts = {model: body["choices"][0]["message"]["content"] for model, body in answers.items()}
    assert len(set(texts.values())) == 3, texts
    manager: EngineManager = client.app.state.serving_manager
    assert len(manager.slots) == 1
    (slot,) = manager.slots.values()
    assert slot.kind == "hf" and len(slot.adapters) == 2
    assert chat(client, world.key_a, world.ft[0]).json()["choices"][0]["message"]["content"] == texts[world.ft[0]]


def test_deployments_keep_engines_warm_and_idle_ones_stop(client: TestClient, world: World) -> None:
    manager: EngineManager = client.app.state.serving_manager
    created = client.post("/api/deployments", json={"model": world.ft[0]}, headers=world.key_a)
    assert created.status_code == 201, created.text
    deployment = created.json()
    assert deployment["engine"]["state"] == "ready" and deployment["adapter"] is True
    assert [d["id"] for d in client.get("/api/deployments", headers=world.key_a).json()] == [deployment["id"]]
    assert client.get("/api/deployments", headers=world.key_b).json() == []
    assert client.delete(f"/api/deployments/{deployment['id']}", headers=world.key_b).status_code == 404

    manager.config = ServingConfig(engine="hf", idle_seconds=0)
    client.portal.call(manager.reap_idle)
    assert len(manager.slots) == 1, "a deployed model's engine is not stopped when idle"
    assert client.delete(f"/api/deployments/{deployment['id']}", headers=world.key_a).status_code == 204
    assert manager.slots == {} and client.get("/api/deployments", headers=world.key_a).json() == []

    chat(client, world.key_a, "tiny")
    assert len(manager.slots) == 1
    assert client.portal.call(manager.reap_idle) == [world.tiny]
    assert manager.slots == {}
