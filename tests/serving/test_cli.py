"""`tunery chat` (terminal chat) and `tunery api` (one model behind an OpenAI API with a key), as processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.serving.support import free_port, make_adapter

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "tunery.serving.cli"]


def job_file(folder: Path, model: Path, adapter: Path) -> Path:
    job = folder / "infer.yaml"
    job.write_text(
        f"model_name_or_path: {model}\nadapter_name_or_path: {adapter}\ntemplate: llama3\n"
        "infer_backend: huggingface\ndo_sample: false\nmax_new_tokens: 10\n"
    )
    return job


def env() -> dict[str, str]:
    return {**os.environ, "TUNERY_SERVE_ENGINE": "", "PYTHONPATH": str(ROOT)}


def test_chat_streams_answers_and_clears_history(tiny_llama: Path, tmp_path: Path) -> None:
    job = job_file(tmp_path, tiny_llama, make_adapter(tiny_llama, tmp_path / "lora", seed=5))
    lines = "Hello there\nHow are you?\nclear\nHello there\nexit\nnever read\n"
    done = subprocess.run(
        [*CLI, "chat", str(job), "--system", "You are terse."],
        input=lines,
        capture_output=True,
        text=True,
        timeout=600,
        env=env(),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    answers = [part.split("\n", 1)[0] for part in done.stdout.split("Assistant: ")[1:]]
    assert len(answers) == 3 and answers[0]
    assert "History has been removed." in done.stdout
    assert answers[2] == answers[0], "after clear the same question gets the same greedy answer"


@pytest.fixture
def api_server(tiny_llama: Path, tmp_path: Path) -> Iterator[str]:
    job = job_file(tmp_path, tiny_llama, make_adapter(tiny_llama, tmp_path / "lora", seed=6))
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    command = [*CLI, "api", str(job), "--host", "127.0.0.1", "--port", str(port), "--api-key", "sekret"]
    process = subprocess.Popen(command, env=env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    try:
        while True:
            assert process.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("tunery api did not start")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(60)
        log.close()


def test_api_serves_one_model_behind_a_key(api_server: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{api_server}/v1", api_key="wrong", max_retries=0).models.list()
    client = OpenAI(base_url=f"{api_server}/v1", api_key="sekret", max_retries=0)
    assert [m.id for m in client.models.list()] == ["lora"]
    messages = [{"role": "user", "content": "Hello there"}]
    whole = client.chat.completions.create(model="lora", messages=messages)
    assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 10
    stream = client.chat.completions.create(model="gpt-3.5-turbo", messages=messages, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == whole.choices[0].message.content
    completion = client.completions.create(model="lora", prompt="The quick brown", max_tokens=5)
    assert completion.choices[0].finish_reason in ("length", "stop")
