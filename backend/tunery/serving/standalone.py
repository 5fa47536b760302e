"""One model served without the platform (``tunery api job.yaml``, like ``llamafactory-cli api``):
``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``, optionally behind one API key.

Like LLaMA-Factory's API, requests may name any model: the one loaded answers (its id is returned).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from tunery.serving.engines.registry import canonical
from tunery.serving.errors import OpenAIError
from tunery.serving.generation import Defaults
from tunery.serving.http import OpenAIRoute, model_card, serve_chat, serve_completion
from tunery.serving.manager import EngineManager
from tunery.serving.schemas import ChatCompletionRequest, CompletionRequest
from tunery.serving.types import ServeTarget
from tunery.spec import JobSpec

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class ServedModel:
    target: ServeTarget
    engine: str | None
    defaults: Defaults
    #: the engine's weights dtype (infer_dtype): auto | float16 | bfloat16 | float32
    dtype: str = "auto"


def served_model(spec: JobSpec, engine: str | None, name: str | None = None) -> ServedModel:
    """The target, engine, dtype and sampling defaults a job file describes (model, one adapter, template,
    infer_dtype, the generation keys)."""
    adapters = spec.model.adapter_name_or_path or []
    if len(adapters) > 1:
        raise ValueError("adapter_name_or_path: serving takes one adapter (merge the others into the model first)")
    if spec.generation.num_beams != 1:
        raise ValueError(
            f"num_beams: {spec.generation.num_beams} asks for beam search, which serving does not do (it samples one "
            "token per sequence and step, with continuous batching); set num_beams: 1"
        )
    base = spec.model.model_name_or_path
    model_id = name or Path(adapters[0] if adapters else base).name or "model"
    target = ServeTarget(
        model_id,
        base,
        spec.data.template,
        adapters[0] if adapters else None,
        tool_format=spec.data.tool_format,
        tokenizer_path=spec.model.tokenizer_name_or_path,
    )
    if spec.model.gguf_file:
        target = gguf_target(target, spec, engine)
        engine = "gguf"
    elif engine is not None and canonical(engine) == "gguf":
        raise ValueError("gguf_file: the gguf engine serves a GGUF file; name it (gguf_file inside model_name_or_path)")
    generation = spec.generation
    defaults = Defaults(
        temperature=generation.temperature if generation.do_sample else 0.0,
        top_p=generation.top_p,
        max_tokens=generation.max_new_tokens,
        top_k=generation.top_k if generation.do_sample else 0,
        repetition_penalty=generation.repetition_penalty,
    )
    backend = engine or {"huggingface": "hf", "hf": "hf", "vllm": "vllm"}.get(spec.model.infer_backend)
    if backend is None:
        raise ValueError(f"infer_backend {spec.model.infer_backend!r} is not supported; use huggingface or vllm")
    return ServedModel(target, backend, defaults, spec.model.infer_dtype)


def gguf_target(target: ServeTarget, spec: JobSpec, engine: str | None) -> ServeTarget:
    """``gguf_file`` in the model folder, served by the gguf engine (llama.cpp) with the folder's tokenizer
    (or, without one, the tokenizer transformers rebuilds from the file)."""
    if engine is not None and canonical(engine) != "gguf":
        raise ValueError(f"gguf_file: a GGUF file is served by the gguf engine (llama.cpp), not {engine}")
    if target.adapter_path is not None:
        raise ValueError(
            "adapter_name_or_path: the gguf engine takes no adapter; merge it into the model before converting to GGUF"
        )
    folder = Path(spec.model.model_name_or_path)
    path = folder / str(spec.model.gguf_file)
    if not path.is_file():
        raise ValueError(f"gguf_file: {path} is not a file")
    has_tokenizer = (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()
    tokenizer = target.tokenizer_path or (str(folder) if has_tokenizer else None)
    return replace(target, base_path=str(path), engine="gguf", tokenizer_path=tokenizer)


def create_standalone_app(model: ServedModel, manager: EngineManager, api_key: str | None = None) -> FastAPI:
    def check_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if api_key is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise OpenAIError(401, "invalid API key: send Authorization: Bearer <API key>", code="invalid_api_key")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.deploy(model.target, model.engine)  # load at start: errors show before serving
        yield
        await manager.shutdown()

    router = APIRouter(route_class=OpenAIRoute, dependencies=[Depends(check_key)])

    @router.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(model.target)]}

    @router.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest) -> Response:
        return await serve_chat(manager, model.target, body, model.defaults)

    @router.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest) -> Response:
        return await serve_completion(manager, model.target, body, model.defaults)

    app = FastAPI(title="Tunery API", lifespan=lifespan)
    app.include_router(router)
    return app
