"""FastAPI glue shared by the platform's ``/v1`` routes and ``tunery api``: OpenAI-shaped errors for every
failure of a route, and chat/completion handlers that hold the engine lease for the whole stream."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.responses import Response

from tunery.serving.chat import (
    Prepared,
    chat_response,
    chat_stream,
    completion_response,
    completion_stream,
    prepare_chat,
    prepare_completion,
)
from tunery.serving.errors import OpenAIError
from tunery.serving.generation import Defaults
from tunery.serving.manager import EngineManager, Lease
from tunery.serving.schemas import ChatCompletionRequest, CompletionRequest
from tunery.serving.types import EngineError, ServeTarget

log = logging.getLogger(__name__)


def openai_error_response(exc: Exception) -> JSONResponse:
    """The OpenAI-shaped answer for any exception a route raised."""
    from tunery.server.errors import ServiceError

    if isinstance(exc, OpenAIError):
        error = exc
    elif isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        location = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        message = f"{location}: {first.get('msg', 'invalid value')}" if location else str(first.get("msg", exc))
        error = OpenAIError(400, message, param=location, code="invalid_value")
    elif isinstance(exc, HTTPException):
        error = OpenAIError(exc.status_code, str(exc.detail))
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)
    elif isinstance(exc, ServiceError):
        status = 400 if exc.status_code == 422 else exc.status_code
        error = OpenAIError(status, exc.detail, extra=exc.extra)
    elif isinstance(exc, EngineError):
        error = OpenAIError(503, str(exc), code="engine_unavailable")
    else:
        log.exception("unexpected error in an OpenAI route")
        error = OpenAIError(500, "internal error; see the server log")
    return JSONResponse(error.body(), status_code=error.status)


class OpenAIRoute(APIRoute):
    """A route whose errors (validation, auth, service, engine) come back in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                from tunery.server.idempotency import IdempotentReplay

                if isinstance(exc, IdempotentReplay):
                    raise
                return openai_error_response(exc)

        return route


async def _serve(
    manager: EngineManager,
    target: ServeTarget,
    prepare: Callable[[Lease], Prepared],
    whole: Callable[[Prepared], Awaitable[dict[str, Any]]],
    stream: Callable[[Prepared], AsyncIterator[str]] | None,
) -> Response:
    if target.reward:
        raise OpenAIError(
            400,
            f"The model '{target.model_id}' is a reward model: it scores answers (POST /v1/score), it does not "
            "generate them.",
            param="model",
            code="reward_model",
        )
    stack = contextlib.AsyncExitStack()
    try:
        lease = await stack.enter_async_context(manager.lease(target))
        prepared = prepare(lease)
        if stream is None:
            body = await whole(prepared)
            await stack.aclose()
            return JSONResponse(body)
    except BaseException:
        await stack.aclose()
        raise

    async def body_stream() -> AsyncIterator[str]:
        try:
            async for item in stream(prepared):
                yield item
        finally:
            await stack.aclose()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body_stream(), media_type="text/event-stream", headers=headers)


async def serve_chat(
    manager: EngineManager, target: ServeTarget, body: ChatCompletionRequest, defaults: Defaults
) -> Response:
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _serve(
        manager,
        target,
        lambda lease: prepare_chat(lease, body, target.model_id, defaults),
        chat_response,
        (lambda prepared: chat_stream(prepared, include_usage)) if body.stream else None,
    )


async def serve_completion(
    manager: EngineManager, target: ServeTarget, body: CompletionRequest, defaults: Defaults
) -> Response:
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _serve(
        manager,
        target,
        lambda lease: prepare_completion(lease, body, target.model_id, defaults),
        completion_response,
        (lambda prepared: completion_stream(prepared, include_usage)) if body.stream else None,
    )


def model_card(target: ServeTarget) -> dict[str, Any]:
    """OpenAI's model object, plus ``reward_model``: true for models that /v1/score takes (and chat refuses)."""
    return {
        "id": target.model_id,
        "object": "model",
        "created": target.created,
        "owned_by": target.owned_by,
        "reward_model": target.reward,
    }
