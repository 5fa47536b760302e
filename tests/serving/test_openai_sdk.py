"""The real ``openai`` SDK against a running Tunery (uvicorn on 127.0.0.1, PostgreSQL, Redis, a real
`tunery worker` process): upload, fine-tune a tiny model, follow the job, then chat with the result."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.server.factories import Factory
from tests.server.worker_support import RedisServer, Stack
from tests.serving.support import (
    WEATHER_CALL,
    WEATHER_QUESTION,
    WEATHER_TOOL,
    register_model,
    running_server,
    serving_app,
    tool_calling_model,
)
from tunery.serving.config import ServingConfig
from tunery.serving.manager import EngineManager

TRAINING_TIMEOUT = 900  # bounds a wait on a busy 2-core machine; nothing asserts durations
HELLO = [{"role": "user", "content": "Say hello."}]
HELLO_ANSWER = "Hello there!"


def training_rows() -> bytes:
    hello = {"messages": [*HELLO, {"role": "assistant", "content": HELLO_ANSWER}]}
    call = {
        "id": "call_1",
        "type": "function",
        "function": {**WEATHER_CALL, "arguments": json.dumps(WEATHER_CALL["arguments"])},
    }
    tool = {
        "messages": [{"role": "user", "content": WEATHER_QUESTION}, {"role": "assistant", "tool_calls": [call]}],
        "tools": [WEATHER_TOOL],
    }
    return "".join(json.dumps(row) + "\n" for row in [hello, tool] * 4).encode()


@pytest.fixture
def stack(pg_url: str, tmp_path: Path) -> Iterator[Stack]:
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    stack = Stack(tmp_path, pg_url, redis_server.url, TUNERY_REDIS_URL=redis_server.url)
    try:
        yield stack
    finally:
        stack.close()
        redis_server.stop()


def wait_finished(client: OpenAI, job_id: str) -> Any:
    deadline = time.monotonic() + TRAINING_TIMEOUT
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"fine-tuning job still {job.status} after {TRAINING_TIMEOUT}s")
        time.sleep(1)


def test_fine_tune_and_chat_with_the_openai_sdk(stack: Stack, tiny_llama: Path, tmp_path: Path) -> None:
    factory = Factory(stack.database, stack.settings)
    project = factory.project()
    other = factory.project()
    register_model(stack.database, project.id, "tiny", tiny_llama)
    register_model(stack.database, project.id, "tool-tiny", tool_calling_model(tiny_llama, tmp_path / "tool-model"))
    stack.worker("ft")
    stack.wait_online("ft")
    app = serving_app(stack.settings)
    app.state.serving_manager = EngineManager(ServingConfig(engine="hf"))
    with running_server(app) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=factory.api_key(project.owner), max_retries=0)
        outsider = OpenAI(base_url=f"{url}/v1", api_key=factory.api_key(other.owner), max_retries=0)

        # files: bad rows are refused with row and field, good files stored and readable
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.create(
                file=("bad.jsonl", b'{"messages": [{"role": "user", "content": "hi"}]}\n{"oops"\n'), purpose="fine-tune"
            )
        assert "row 2" in refused.value.message
        uploaded = client.files.create(file=("train.jsonl", training_rows()), purpose="fine-tune")
        assert (
            uploaded.purpose == "fine-tune" and uploaded.filename == "train.jsonl" and uploaded.id.startswith("file-")
        )
        assert [f.id for f in client.files.list()] == [uploaded.id]
        assert client.files.content(uploaded.id).read() == training_rows()
        with pytest.raises(openai.NotFoundError):
            outsider.files.retrieve(uploaded.id)

        # a method given the wrong kind of file is refused clearly
        with pytest.raises(openai.BadRequestError) as dpo:
            client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id, method={"type": "dpo"})
        assert "preference file" in dpo.value.message

        hyper = {"n_epochs": 20, "batch_size": 8, "learning_rate_multiplier": 100}
        job = client.fine_tuning.jobs.create(
            model="tiny",
            training_file=uploaded.id,
            method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
            seed=7,
            suffix="greeter",
            metadata={"team": "serving"},
        )
        assert job.status in ("queued", "running") and job.id.startswith("ftjob-")
        assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
        done = wait_finished(client, job.id)
        assert done.status == "succeeded", done.error
        job_part = job.id.removeprefix("ftjob-")
        assert done.fine_tuned_model == f"ft:tiny:{project.slug}:{job_part}"
        assert done.metadata == {"team": "serving"} and done.user_provided_suffix == "greeter"
        assert done.hyperparameters.n_epochs == 20 and done.seed == 7

        events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
        messages = [event.message for event in events]
        assert messages[0] == "The job has successfully completed"
        assert any(
            event.type == "metrics" and event.data and event.data.get("train_loss") is not None for event in events
        )
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
        assert checkpoints and all(c.fine_tuning_job_id == job.id for c in checkpoints)
        steps = [c.step_number for c in checkpoints]
        assert steps == sorted(steps, reverse=True)
        models = {model.id for model in client.models.list()}
        assert done.fine_tuned_model in models and checkpoints[0].fine_tuned_model_checkpoint in models
        assert done.fine_tuned_model not in {model.id for model in outsider.models.list()}
        with pytest.raises(openai.NotFoundError):
            outsider.chat.completions.create(model=done.fine_tuned_model, messages=HELLO)
        with pytest.raises(openai.ConflictError):
            client.fine_tuning.jobs.cancel(job.id)

        # the fine-tune answers as it was trained, whole and streamed, at once
        answer = client.chat.completions.create(
            model=done.fine_tuned_model, messages=HELLO, temperature=0, max_tokens=10
        )
        assert answer.choices[0].message.content == HELLO_ANSWER and answer.choices[0].finish_reason == "stop"
        base = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0, max_tokens=10)
        assert base.choices[0].message.content != HELLO_ANSWER
        stream = client.chat.completions.create(
            model=done.fine_tuned_model,
            messages=HELLO,
            temperature=0,
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO_ANSWER
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == answer.usage.completion_tokens

        # tools: the fine-tune takes them in its template; a model that calls tools gets its calls parsed
        with_tools = client.chat.completions.create(
            model=done.fine_tuned_model,
            messages=[{"role": "user", "content": WEATHER_QUESTION}],
            tools=[WEATHER_TOOL],
            temperature=0,
            max_tokens=40,
        )
        assert with_tools.choices[0].finish_reason in ("stop", "length", "tool_calls")
        for streamed in (False, True):
            call = tool_call(client, streamed)
            assert call == ("get_weather", {"city": "Paris"})


def tool_call(client: OpenAI, streamed: bool) -> tuple[str, dict[str, Any]]:
    request: dict[str, Any] = {
        "model": "tool-tiny",
        "messages": [{"role": "user", "content": WEATHER_QUESTION}],
        "tools": [WEATHER_TOOL],
        "temperature": 0,
        "max_tokens": 40,
    }
    if not streamed:
        answer = client.chat.completions.create(**request)
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls or []
        assert call.id.startswith("call_") and call.type == "function"
        return call.function.name, json.loads(call.function.arguments)
    chunks = list(client.chat.completions.create(**request, stream=True))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not "".join(c.choices[0].delta.content or "" for c in chunks)
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0
    function = calls[0].function
    assert function is not None and function.name is not None
    return function.name, json.loads(function.arguments or "{}")
