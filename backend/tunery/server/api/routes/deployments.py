"""Deployments (``/api/deployments``): keep a model's engine warm in this API process, list, undeploy.

Models are named by their OpenAI ids (``GET /v1/models``). Engines without a deployment are stopped after
``TUNERY_SERVE_IDLE_SECONDS`` without requests (default 900).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep
from tunery.server.api.routes.openai_common import get_manager, serving_lifespan
from tunery.server.errors import ConflictError, NotFoundError, ServiceError
from tunery.server.services import served_models
from tunery.serving.errors import OpenAIError
from tunery.serving.manager import Deployment, EngineManager
from tunery.serving.types import EngineError

router = APIRouter(tags=["deployments"], lifespan=serving_lifespan)
ManagerDep = Annotated[EngineManager, Depends(get_manager)]


class DeploymentCreate(BaseModel):
    model: str = Field(description="An id from GET /v1/models (base model or fine-tune).")
    engine: Literal["vllm", "hf"] | None = Field(default=None, description="Default: vllm when installed, else hf.")


class EngineState(BaseModel):
    kind: str
    state: str
    base_model: str
    adapters_loaded: int
    active_requests: int
    idle_seconds: float


class DeploymentPublic(BaseModel):
    id: str
    model: str
    engine: EngineState | None
    adapter: bool
    created_at: datetime


def _public(manager: EngineManager, deployment: Deployment) -> DeploymentPublic:
    slot = manager.slots.get(deployment.target.base_path)
    engine = None
    if slot is not None:
        engine = EngineState(
            kind=slot.kind,
            state=slot.state,
            base_model=slot.base_path,
            adapters_loaded=len(slot.adapters),
            active_requests=slot.active,
            idle_seconds=round(time.monotonic() - slot.last_used, 1),
        )
    return DeploymentPublic(
        id=deployment.id,
        model=deployment.target.model_id,
        engine=engine,
        adapter=deployment.target.adapter_path is not None,
        created_at=datetime.fromtimestamp(deployment.created_at, UTC),
    )


def _resolve(
    session: SessionDep, principal: PrincipalDep, settings: SettingsDep, model: str
) -> served_models.ServeTarget:
    try:
        return served_models.resolve_target(session, principal, settings, model)
    except OpenAIError as exc:
        raise ServiceError(exc.message) if exc.status != 404 else NotFoundError(exc.message) from exc


@router.post("/api/deployments", status_code=status.HTTP_201_CREATED)
async def deploy(
    body: DeploymentCreate, session: SessionDep, principal: PrincipalDep, settings: SettingsDep, manager: ManagerDep
) -> DeploymentPublic:
    """Start the model's engine (and load its adapter) and keep it running; answers once it is ready."""
    target = await run_in_threadpool(_resolve, session, principal, settings, body.model)
    session.close()
    try:
        deployment = await manager.deploy(target, body.engine)
    except EngineError as exc:
        raise ConflictError(str(exc)) if "already served" in str(exc) else ServiceError(str(exc)) from exc
    return _public(manager, deployment)


@router.get("/api/deployments")
def list_deployments(
    session: SessionDep, principal: PrincipalDep, settings: SettingsDep, manager: ManagerDep
) -> list[DeploymentPublic]:
    """Deployments of models you can use."""
    visible = []
    for deployment in list(manager.deployments.values()):
        try:
            served_models.resolve_target(session, principal, settings, deployment.target.model_id)
        except OpenAIError:
            continue
        visible.append(_public(manager, deployment))
    return visible


def _visible(
    session: SessionDep, principal: PrincipalDep, settings: SettingsDep, manager: EngineManager, deployment_id: str
) -> Deployment:
    deployment = manager.deployments.get(deployment_id)
    if deployment is None:
        raise NotFoundError("deployment not found")
    _resolve(session, principal, settings, deployment.target.model_id)
    return deployment


@router.get("/api/deployments/{deployment_id}")
def get_deployment(
    deployment_id: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep, manager: ManagerDep
) -> DeploymentPublic:
    return _public(manager, _visible(session, principal, settings, manager, deployment_id))


@router.delete("/api/deployments/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def undeploy(
    deployment_id: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep, manager: ManagerDep
) -> None:
    """Stop keeping the model warm: its adapter is unloaded, its engine stopped unless still needed."""
    await run_in_threadpool(_visible, session, principal, settings, manager, deployment_id)
    session.close()
    await manager.undeploy(deployment_id)
