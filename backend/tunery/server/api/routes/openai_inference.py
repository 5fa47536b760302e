"""``/v1/models``, ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/score`` (reward-model scores)."""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep
from tunery.server.api.routes.openai_common import ManagerDep, openai_router
from tunery.server.services import served_models
from tunery.serving.generation import Defaults
from tunery.serving.http import model_card, serve_chat, serve_completion
from tunery.serving.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    ScoreRequest,
    ScoreResponse,
)
from tunery.serving.scoring import serve_score

router = openai_router("openai")


@router.get("/v1/models")
def list_models(session: SessionDep, principal: PrincipalDep, settings: SettingsDep) -> ModelList:
    """Base models of your projects (and shared ones) and every finished fine-tune with its checkpoints;
    ``reward_model`` marks the ones /v1/score takes."""
    targets = served_models.list_targets(session, principal, settings)
    return ModelList(data=[ModelCard.model_validate(model_card(target)) for target in targets])


@router.get("/v1/models/{model_id:path}", responses={404: {"model": ErrorResponse}})
def get_model(model_id: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep) -> ModelCard:
    return ModelCard.model_validate(model_card(served_models.resolve_target(session, principal, settings, model_id)))


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


SCORE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "not a reward model, or a malformed request (param names it)"},
    401: {"model": ErrorResponse, "description": "no or an invalid API key"},
    404: {"model": ErrorResponse, "description": "no such model, or not one of your projects'"},
    503: {"model": ErrorResponse, "description": "the reward model could not be loaded"},
}


@router.post("/v1/score", responses=SCORE_ERRORS)
async def score(
    body: ScoreRequest, session: SessionDep, principal: PrincipalDep, settings: SettingsDep, manager: ManagerDep
) -> ScoreResponse:
    """Scores of texts (``input``) or (prompt, response) ``pairs`` from a reward model: a fine-tune of stage rm
    or a registered sequence-classification model (``reward_model: true`` in GET /v1/models)."""
    target = await run_in_threadpool(served_models.resolve_target, session, principal, settings, body.model)
    session.close()  # no connection is held while the model scores
    return await serve_score(manager.scorers, target, body)
