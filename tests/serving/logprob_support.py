"""Helpers of the log-prob tests: `tunery api`'s app for a job file served in a thread, and log-probs computed
directly from the model with transformers (log-softmax of its logits) to compare the served ones with."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch
import uvicorn
from openai import OpenAI

from tests.serving.support import free_port
from tunery.serving.cli import engine_config
from tunery.serving.manager import EngineManager
from tunery.serving.standalone import create_standalone_app, served_model
from tunery.spec import load_spec

#: served and reference log-probs agree this closely (float32 on the CPU, different kernels)
TOLERANCE = 2e-4
QUESTION = [{"role": "user", "content": "Hello, who are you?"}]
PROMPTS = ["The quick brown fox", "Hello world, this is"]
#: bounds the start of vLLM on a busy machine; nothing asserts durations
STARTUP_TIMEOUT = 900


def job_file(folder: Path, model: Path, *lines: str) -> Path:
    job = folder / "serve.yaml"
    job.write_text(
        "\n".join([f"model_name_or_path: {model}", "template: llama3", "do_sample: false", "max_new_tokens: 8", *lines])
        + "\n"
    )
    return job


@contextlib.contextmanager
def served(job: Path, engine: str) -> Iterator[OpenAI]:
    """`tunery api job.yaml --engine <engine>`'s app on 127.0.0.1, as an openai client."""
    model = served_model(load_spec(job, ["do_train=false"]), engine)
    config = engine_config(model)
    config = type(config)(**{**config.__dict__, "engine": engine, "max_model_len": 1024})
    app = create_standalone_app(model, EngineManager(config))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT  # the app loads its model before it serves
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"tunery api ({engine} engine) did not start")
        time.sleep(0.1)
    try:
        yield OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
    finally:
        server.should_exit = True
        thread.join(120)


@cache
def _unicode_bytes() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


def token_id(tokenizer: Any, raw: Sequence[int]) -> int:
    """The id of the byte-level BPE token with these UTF-8 ``bytes`` (the tiny models' tokenizers)."""
    table = {byte: char for char, byte in _unicode_bytes().items()}
    piece = "".join(table[byte] for byte in raw)
    vocab = tokenizer.get_vocab()
    if piece in vocab:
        return int(vocab[piece])
    return int(vocab[bytes(raw).decode("utf-8")])  # a special token: kept as it is


def reference(model: Any, ids: list[int]) -> torch.Tensor:
    """Log-probs [len(ids), vocab]: row p is the distribution of the token after position p."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    return logits.float().log_softmax(-1)


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt Tunery renders for a chat request (the llama3 training template)."""
    from tunery.engine.templates import get_template
    from tunery.serving.prompting import encode, render_chat
    from tunery.serving.schemas import ChatCompletionRequest

    request = ChatCompletionRequest.model_validate({"model": "m", "messages": messages})
    return encode(tokenizer, render_chat(get_template("llama3", tokenizer), request).text)


def greedy(model: Any, ids: list[int], new_tokens: int, **generate: Any) -> list[int]:
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=new_tokens, do_sample=False, **generate,
        )  # fmt: skip
    return [int(token) for token in out[0, len(ids) :]]


def content_ids(tokenizer: Any, content: Sequence[Any]) -> list[int]:
    """Token ids of chat log-prob entries (from their bytes)."""
    return [token_id(tokenizer, entry.bytes) for entry in content]


def check_chat_content(content: Sequence[Any], tokenizer: Any, logprobs: torch.Tensor, start: int, top: int) -> None:
    """Each entry is its token's raw log-prob at position ``start + i``, with the ``top`` most likely tokens."""
    for number, entry in enumerate(content):
        row = logprobs[start + number]
        token = token_id(tokenizer, entry.bytes)
        assert entry.token == tokenizer.decode([token])
        assert abs(entry.logprob - float(row[token])) < TOLERANCE, (number, entry.logprob, float(row[token]))
        assert len(entry.top_logprobs) == top
        best = torch.topk(row, top).values.tolist()
        assert [alt.logprob for alt in entry.top_logprobs] == sorted(alt.logprob for alt in entry.top_logprobs)[::-1]
        for alternative, expected in zip(entry.top_logprobs, best, strict=True):
            assert abs(alternative.logprob - expected) < TOLERANCE
            assert abs(float(row[token_id(tokenizer, alternative.bytes)]) - alternative.logprob) < TOLERANCE


def joined_legacy(parts: Sequence[Any]) -> dict[str, list[Any]]:
    """Legacy log-probs objects of stream chunks, one after the other."""
    out: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for part in parts:
        if part is not None:
            for key in out:
                out[key] += getattr(part, key)
    return out
