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
from tunery.serving.logprobs import TokenTexts, chat_logprobs, completion_logprobs, text_length, token_texts
from tunery.serving.manager import Lease
from tunery.serving.prompting import encode, encode_completion_prompt, render_chat
from tunery.serving.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from tunery.serving.toolcalls import ToolStream, openai_tool_calls, parse_calls
from tunery.serving.types import GenerationRequest, RequestError, TokenLogprob


def unsupported(request: SamplingFields) -> None:
    """Refuse options Tunery does not implement, rather than silently ignoring them; and combinations
    OpenAI refuses."""
    if isinstance(request, ChatCompletionRequest):
        kind = (request.response_format or {}).get("type", "text")
        if kind != "text":
            raise OpenAIError(400, f"response_format {kind!r} is not supported; use 'text'", param="response_format")
        if request.top_logprobs is not None and not request.logprobs:
            raise OpenAIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    if isinstance(request, CompletionRequest):
        if request.suffix:
            raise OpenAIError(400, "suffix (fill-in-the-middle) is not supported", param="suffix")
        if request.best_of not in (None, request.n):
            raise OpenAIError(400, "best_of must equal n (or be left out)", param="best_of")
        if request.max_tokens == 0 and not request.echo:
            raise OpenAIError(
                400, "max_tokens 0 only makes sense with echo: true (scoring the prompt)", param="max_tokens"
            )


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
    #: alternatives per token in the response's log-probs; None: no log-probs
    logprobs: int | None = None
    echo: bool = False

    @property
    def texts(self) -> TokenTexts:
        return token_texts(self.lease.tokenizer)


def prepare_chat(lease: Lease, request: ChatCompletionRequest, model: str, defaults: Defaults) -> Prepared:
    unsupported(request)
    try:
        prompt = render_chat(lease.template, request)
    except RequestError as exc:
        raise OpenAIError(400, str(exc), param=exc.param) from exc
    ids = encode(lease.tokenizer, prompt.text)
    max_tokens = request.max_completion_tokens or request.max_tokens
    logprobs = (request.top_logprobs or 0) if request.logprobs else None
    context = lease.engine.context_length
    params = sampling_params(request, max_tokens, len(ids), context, lease, defaults, logprobs)
    run = Run(lease, GenerationRequest(ids, params, request.n, lease.adapter))
    return Prepared(
        lease,
        model,
        [run],
        len(ids),
        bool(prompt.tools),
        f"chatcmpl-{secrets.token_hex(12)}",
        int(time.time()),
        logprobs,
    )


def prepare_completion(lease: Lease, request: CompletionRequest, model: str, defaults: Defaults) -> Prepared:
    unsupported(request)
    prompts = completion_prompts(lease, request.prompt)
    runs = []
    context = lease.engine.context_length
    for number, ids in enumerate(prompts):
        params = sampling_params(
            request, request.max_tokens, len(ids), context, lease, defaults, request.logprobs, request.echo
        )
        runs.append(Run(lease, GenerationRequest(ids, params, request.n, lease.adapter), offset=number * request.n))
    total = sum(len(ids) for ids in prompts)
    return Prepared(
        lease,
        model,
        runs,
        total,
        False,
        f"cmpl-{secrets.token_hex(12)}",
        int(time.time()),
        request.logprobs,
        request.echo,
    )


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
        logprobs = None
        if prepared.logprobs is not None:
            logprobs = chat_logprobs(prepared.texts, choice.logprobs, prepared.logprobs)
        choices.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": reason})
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

    def chunk(
        index: int, delta: dict[str, Any], reason: str | None = None, logprobs: dict[str, Any] | None = None
    ) -> str:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
        body = {**base, "choices": [choice]}
        if include_usage:
            body["usage"] = None
        return sse(body)

    tools = [ToolStream.for_template(prepared.lease.template) if prepared.tools else None for _ in run.choices]
    for index in range(len(run.choices)):
        yield chunk(index, {"role": "assistant", "content": "", "refusal": None})
    try:
        async for index, text, reason, entries in run.stream():
            stream = tools[index]
            out = stream.feed(text) if stream is not None else text
            logprobs = None
            if prepared.logprobs is not None and entries:
                logprobs = chat_logprobs(prepared.texts, entries, prepared.logprobs)
            if out or logprobs is not None:  # tokens whose text is held back still bring their log-probs
                yield chunk(index, {"content": out} if out or stream is None else {}, None, logprobs)
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
def echo_logprobs(prepared: Prepared, run: Run) -> tuple[str, dict[str, Any] | None]:
    """The echoed prompt's text and (with log-probs) its legacy log-probs object, the first token's null."""
    prompt_ids = run.request.prompt_ids
    text = run.lease.tokenizer.decode(prompt_ids)
    if prepared.logprobs is None:
        return text, None
    entries: list[TokenLogprob | None] = list(run.prompt_logprobs or [None] * len(prompt_ids))
    return text, completion_logprobs(prepared.texts, entries, prompt_ids, prepared.logprobs)


def generated_logprobs(prepared: Prepared, entries: list[TokenLogprob], offset: int) -> dict[str, Any] | None:
    if prepared.logprobs is None:
        return None
    tokens = [entry.token_id for entry in entries]
    return completion_logprobs(prepared.texts, entries, tokens, prepared.logprobs, offset)


def joined(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    """Two legacy log-probs objects one after the other."""
    if first is None or second is None:
        return first or second
    return {key: first[key] + second[key] for key in first}


async def completion_response(prepared: Prepared) -> dict[str, Any]:
    async for _ in merged(prepared.runs):
        pass
    choices = []
    for run in prepared.runs:
        prompt_text, prompt_logprobs = echo_logprobs(prepared, run) if prepared.echo else ("", None)
        start = text_length(prepared.texts, run.request.prompt_ids) if prompt_logprobs is not None else 0
        for number, choice in enumerate(run.choices):
            logprobs = joined(prompt_logprobs, generated_logprobs(prepared, choice.logprobs, start))
            choices.append(
                {
                    "index": run.offset + number,
                    "text": prompt_text + choice.text,
                    "logprobs": logprobs,
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


async def completion_stream(prepared: Prepared, include_usage: bool) -> AsyncIterator[str]:
    """Chunks of text as it comes; with echo, a choice's first chunk is its prompt (and the prompt's
    log-probs, known once the engine read the prompt); each chunk carries the log-probs of its tokens."""
    base = {"id": prepared.id, "object": "text_completion", "created": prepared.created, "model": prepared.model}

    def chunk(index: int, text: str, reason: str | None, logprobs: dict[str, Any] | None = None) -> str:
        body = {**base, "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}]}
        if include_usage:
            body["usage"] = None
        return sse(body)

    runs = {run.offset + number: run for run in prepared.runs for number in range(run.request.n)}
    offsets = dict.fromkeys(runs, 0)  # text_offset of each choice's next token
    echoed: set[int] = set()
    try:
        async for index, text, reason, entries in merged(prepared.runs):
            if prepared.echo and index not in echoed:
                echoed.add(index)
                prompt_text, prompt_logprobs = echo_logprobs(prepared, runs[index])
                if prompt_logprobs is not None:
                    offsets[index] = text_length(prepared.texts, runs[index].request.prompt_ids)
                yield chunk(index, prompt_text, None, prompt_logprobs)
            logprobs = generated_logprobs(prepared, entries, offsets[index]) if entries else None
            if logprobs is not None:
                offsets[index] += text_length(prepared.texts, [entry.token_id for entry in entries])
            if text or reason is not None or logprobs is not None:
                yield chunk(index, text, reason, logprobs)
    except OpenAIError as exc:
        yield sse(exc.body())
        yield sse("[DONE]")
        return
    if include_usage:
        completion_tokens = sum(run.completion_tokens for run in prepared.runs)
        yield sse({**base, "choices": [], "usage": usage(prepared.prompt_tokens, completion_tokens)})
    yield sse("[DONE]")
