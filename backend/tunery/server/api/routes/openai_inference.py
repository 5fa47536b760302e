"""``/v1/models``, ``/v1/chat/completions``, ``/v1/completions`` and the reward ``/v1/score`` placeholder."""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep
from tunery.server.api.routes.openai_common import ManagerDep, openai_router
from tunery.server.services import served_models
from tunery.serving.errors import OpenAIError
from tunery.serving.generation import Defaults
from tunery.serving.http import model_card, serve_chat, serve_completion
from tunery.serving.schemas import ChatCompletionRequest, CompletionRequest
from tunery.spec.rules import TRAINED_STAGES

router = openai_router("openai")


@router.get("/v1/models")
def list_models(session: SessionDep, principal: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Base models of your projects (and shared ones) and every finished fine-tune with its checkpoints."""
    targets = served_models.list_targets(session, principal, settings)
    return {"object": "list", "data": [model_card(target) for target in targets]}


@router.get("/v1/models/{model_id:path}")
def get_model(model_id: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    return model_card(served_models.resolve_target(session, principal, settings, model_id))


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    manager: ManagerDep,
) -> Response:
    """OpenAI chat completions (streaming with ``stream: true``); tool calls parsed by the model's template."""
    target = await run_in_threadpool(served_models.resolve_target, session, principal, settings, body.model)
    session.close()  # no connection is held while the model answers
    return await serve_chat(manager, target, body, Defaults(max_tokens=manager.config.default_max_tokens))


@router.post("/v1/completions", response_model=None)
async def completions(
    body: CompletionRequest, session: SessionDep, principal: PrincipalDep, settings: SettingsDep, manager: ManagerDep
) -> Response:
    target = await run_in_threadpool(served_models.resolve_target, session, principal, settings, body.model)
    session.close()
    return await serve_completion(manager, target, body, Defaults(max_tokens=manager.config.default_max_tokens))


@router.post("/v1/score", status_code=501)
def score(principal: PrincipalDep) -> dict[str, Any]:
    """Reward-model scores: available once the engine trains reward models (stage ``rm``)."""
    if "rm" not in TRAINED_STAGES:
        raise OpenAIError(
            501,
            "reward model scoring is not available: the training engine cannot train reward models "
            f"(stage 'rm') yet; trainable stages: {', '.join(TRAINED_STAGES)}",
            code="reward_models_unavailable",
        )
    raise OpenAIError(501, "reward model scoring is not implemented yet", code="not_implemented")
