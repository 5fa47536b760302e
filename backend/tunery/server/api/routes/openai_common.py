"""Shared pieces of the ``/v1`` routers: OpenAI-shaped errors, the process's engine manager, the caller's
project for uploads and new jobs (``OpenAI-Project`` header: a project id or slug)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from sqlalchemy import select

from tunery.server.api.deps import PrincipalDep, SessionDep
from tunery.server.auth.access import require_access
from tunery.server.db.models import Membership, Role
from tunery.serving.errors import OpenAIError
from tunery.serving.http import OpenAIRoute
from tunery.serving.manager import EngineManager


@asynccontextmanager
async def serving_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stops every engine this process started when the app shuts down."""
    yield
    manager: EngineManager | None = getattr(app.state, "serving_manager", None)
    if manager is not None:
        await manager.shutdown()
        app.state.serving_manager = None


def openai_router(tag: str) -> APIRouter:
    return APIRouter(tags=[tag], route_class=OpenAIRoute, lifespan=serving_lifespan)


def get_manager(request: Request) -> EngineManager:
    manager: EngineManager | None = getattr(request.app.state, "serving_manager", None)
    if manager is None:
        manager = EngineManager()
        request.app.state.serving_manager = manager
    return manager


ManagerDep = Annotated[EngineManager, Depends(get_manager)]
ProjectHeader = Annotated[
    str | None,
    Header(alias="OpenAI-Project", description="Project id or slug (needed when you are in several projects)."),
]


def target_project(session: SessionDep, principal: PrincipalDep, project: ProjectHeader = None) -> str:
    """The project new files and jobs go to: the header's (member role needed) or the caller's only one."""
    if project is None:
        owned = session.scalars(select(Membership.project_id).where(Membership.user_id == principal.user_id)).all()
        if len(owned) != 1:
            why = f"you are a member of {len(owned)} projects" if owned else "you are not a member of any project"
            raise OpenAIError(400, f"{why}: send the OpenAI-Project header (a project id or slug)", param="project")
        project = owned[0]
    return require_access(session, principal, project, Role.MEMBER).project_id


def listed_projects(session: SessionDep, principal: PrincipalDep, project: ProjectHeader = None) -> list[str]:
    """Projects a list covers: the header's, else every project of the caller."""
    if project is not None:
        return [require_access(session, principal, project).project_id]
    return list(session.scalars(select(Membership.project_id).where(Membership.user_id == principal.user_id)))


TargetProject = Annotated[str, Depends(target_project)]
ListedProjects = Annotated[list[str], Depends(listed_projects)]


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": data, "has_more": has_more}
    if data:
        body["first_id"], body["last_id"] = data[0]["id"], data[-1]["id"]
    return body
