"""``/v1/chat/completions`` and ``/v1/completions`` on a leased engine: whole responses and SSE streams."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tunery.serving.errors import OpenAIError
from tunery.serving.generation import Defaults, Run, merged, sampling_params, usage
from tunery.serving.manager import Lease
from tunery.serving.prompting import encode, encode_completion_prompt, render_chat
from tunery.serving.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from tunery.serving.toolcalls import ToolStream, openai_tool_calls, parse_calls
from tunery.serving.types import GenerationRequest, RequestError


def unsupported(request: SamplingFields) -> None:
    """Refuse options Tunery does not implement, rather than silently ignoring them."""
    if request.logprobs:
        raise OpenAIError(400, "logprobs are not supported by Tunery's serving yet", param="logprobs")
    if isinstance(request, ChatCompletionRequest):
        kind = (request.response_format or {}).get("type", "text")
        if kind != "text":
            raise OpenAIError(400, f"response_format {kind!r} is not supported; use 'text'", param="response_format")
    if isinstance(request, CompletionRequest):
        if request.suffix:
            raise OpenAIError(400, "suffix (fill-in-the-middle) is not supported", param="suffix")
        if request.best_of not in (None, request.n):
            raise OpenAIError(400, "best_of must equal n (or be left out)", param="best_of")


def sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


@dataclass
class Prepared:
    """A validated request: its prompt(s), runs and response metadata."""

    lease: Lease
    model: str
    runs: list[Run]
    prompt_tokens: int
    tools: bool
    id: str
    created: int


def prepare_chat(lease: Lease, request: ChatCompletionRequest, model: str, defaults: Defaults) -> Prepared:
    unsupported(request)
    try:
        prompt = render_chat(lease.template, request)
    except RequestError as exc:
        raise OpenAIError(400, str(exc), param=exc.param) from exc
    ids = encode(lease.tokenizer, prompt.text)
    max_tokens = request.max_completion_tokens or request.max_tokens
    params = sampling_params(request, max_tokens, len(ids), lease.engine.context_length, lease, defaults)
    run = Run(lease, GenerationRequest(ids, params, request.n, lease.adapter))
    return Prepared(
        lease, model, [run], len(ids), bool(prompt.tools), f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    )


def prepare_completion(lease: Lease, request: CompletionRequest, model: str, defaults: Defaults) -> Prepared:
    unsupported(request)
    prompts = completion_prompts(lease, request.prompt)
    runs = []
    for number, ids in enumerate(prompts):
        params = sampling_params(request, request.max_tokens, len(ids), lease.engine.context_length, lease, defaults)
        runs.append(Run(lease, GenerationRequest(ids, params, request.n, lease.adapter), offset=number * request.n))
    total = sum(len(ids) for ids in prompts)
    return Prepared(lease, model, runs, total, False, f"cmpl-{secrets.token_hex(12)}", int(time.time()))


def completion_prompts(lease: Lease, prompt: Any) -> list[list[int]]:
    """Token ids of each prompt: a string, a list of strings, token ids, or a list of token id lists."""
    if isinstance(prompt, str):
        return [encode_completion_prompt(lease.tokenizer, prompt)]
    if prompt and all(isinstance(item, int) for item in prompt):
        return [list(prompt)]
    items = list(prompt)
    if not items:
        raise OpenAIError(400, "prompt is empty", param="prompt")
    return [encode_completion_prompt(lease.tokenizer, p) if isinstance(p, str) else list(p) for p in items]


# ----- chat ---------------------------------------------------------------------------------------------
async def chat_response(prepared: Prepared) -> dict[str, Any]:
    run = prepared.runs[0]
    async for _ in run.events():
        pass
    choices = []
    for index, choice in enumerate(run.choices):
        message: dict[str, Any] = {"role": "assistant", "content": choice.text}
        reason = choice.finish_reason
        calls = parse_calls(prepared.lease.template, choice.text) if prepared.tools else None
        if calls:
            message = {"role": "assistant", "content": None, "tool_calls": openai_tool_calls(calls)}
            reason = "tool_calls"
        message.setdefault("refusal", None)
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": reason})
    return {
        "id": prepared.id,
        "object": "chat.completion",
        "created": prepared.created,
        "model": prepared.model,
        "system_fingerprint": f"tunery-{prepared.lease.engine.kind}",
        "choices": choices,
        "usage": usage(prepared.prompt_tokens, run.completion_tokens),
    }


async def chat_stream(prepared: Prepared, include_usage: bool) -> AsyncIterator[str]:
    run = prepared.runs[0]
    base = {
        "id": prepared.id,
        "object": "chat.completion.chunk",
        "created": prepared.created,
        "model": prepared.model,
        "system_fingerprint": f"tunery-{prepared.lease.engine.kind}",
    }

    def chunk(index: int, delta: dict[str, Any], reason: str | None = None) -> str:
        body = {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}]}
        if include_usage:
            body["usage"] = None
        return sse(body)

    tools = [ToolStream.for_template(prepared.lease.template) if prepared.tools else None for _ in run.choices]
    for index in range(len(run.choices)):
        yield chunk(index, {"role": "assistant", "content": "", "refusal": None})
    try:
        async for index, text, reason in run.events():
            stream = tools[index]
            out = stream.feed(text) if stream is not None else text
            if out:
                yield chunk(index, {"content": out})
            if reason is None:
                continue
            if stream is not None:
                rest, calls = stream.finish()
                if rest:
                    yield chunk(index, {"content": rest})
                if calls:
                    deltas = [{"index": i, **call} for i, call in enumerate(openai_tool_calls(calls))]
                    yield chunk(index, {"tool_calls": deltas})
                    reason = "tool_calls"
            yield chunk(index, {}, reason)
    except OpenAIError as exc:
        yield sse(exc.body())
        yield sse("[DONE]")
        return
    if include_usage:
        yield sse({**base, "choices": [], "usage": usage(prepared.prompt_tokens, run.completion_tokens)})
    yield sse("[DONE]")


# ----- text completions ---------------------------------------------------------------------------------
async def completion_response(prepared: Prepared, echo: bool) -> dict[str, Any]:
    async for _ in merged(prepared.runs):
        pass
    choices = []
    for run in prepared.runs:
        prompt_text = run.lease.tokenizer.decode(run.request.prompt_ids) if echo else ""
        for number, choice in enumerate(run.choices):
            choices.append(
                {
                    "index": run.offset + number,
                    "text": prompt_text + choice.text,
                    "logprobs": None,
                    "finish_reason": choice.finish_reason,
                }
            )
    completion_tokens = sum(run.completion_tokens for run in prepared.runs)
    return {
        "id": prepared.id,
        "object": "text_completion",
        "created": prepared.created,
        "model": prepared.model,
        "system_fingerprint": f"tunery-{prepared.lease.engine.kind}",
        "choices": choices,
        "usage": usage(prepared.prompt_tokens, completion_tokens),
    }


async def completion_stream(prepared: Prepared, include_usage: bool, echo: bool) -> AsyncIterator[str]:
    base = {"id": prepared.id, "object": "text_completion", "created": prepared.created, "model": prepared.model}

    def chunk(index: int, text: str, reason: str | None) -> str:
        body = {**base, "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": reason}]}
        if include_usage:
            body["usage"] = None
        return sse(body)

    if echo:
        for run in prepared.runs:
            for number in range(run.request.n):
                yield chunk(run.offset + number, run.lease.tokenizer.decode(run.request.prompt_ids), None)
    try:
        async for index, text, reason in merged(prepared.runs):
            if text or reason is not None:
                yield chunk(index, text, reason)
    except OpenAIError as exc:
        yield sse(exc.body())
        yield sse("[DONE]")
        return
    if include_usage:
        completion_tokens = sum(run.completion_tokens for run in prepared.runs)
        yield sse({**base, "choices": [], "usage": usage(prepared.prompt_tokens, completion_tokens)})
    yield sse("[DONE]")
