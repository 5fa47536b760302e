"""Projects and their members. Non-members get 404 for everything under a project."""

from __future__ import annotations

from fastapi import APIRouter, status

from tunery.server.api.deps import PrincipalDep, ProjectOwner, ProjectViewer, SessionDep, StorageDep
from tunery.server.api.schemas.base import ModelResponse
from tunery.server.api.schemas.projects import (
    MemberCreate,
    MemberPublic,
    MemberUpdate,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
)
from tunery.server.auth.access import ProjectAccess
from tunery.server.db.models import Membership, Project, Role, User
from tunery.server.errors import ForbiddenError
from tunery.server.idempotency import IdempotencyDep
from tunery.server.services import projects

router = APIRouter(prefix="/api/projects", tags=["projects"])


def _public(project: Project, role: Role) -> ProjectPublic:
    return ProjectPublic(id=project.id, name=project.name, slug=project.slug, created_at=project.created_at, role=role)


def _member(membership: Membership, user: User) -> MemberPublic:
    return MemberPublic(user_id=user.id, email=user.email, role=membership.role, created_at=membership.created_at)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_project(
    body: ProjectCreate, principal: PrincipalDep, session: SessionDep, idem: IdempotencyDep
) -> ProjectPublic:
    """A new project; the caller becomes its owner."""
    project = projects.create_project(session, principal.user, body.name, body.slug)
    out = idem.remember(session, status.HTTP_201_CREATED, _public(project, Role.OWNER))
    session.commit()
    return out


@router.get("", response_model=list[ProjectPublic])
def list_projects(principal: PrincipalDep, session: SessionDep) -> ModelResponse:
    """The caller's projects, with the caller's role in each."""
    mine = projects.user_projects(session, principal.user_id)
    return ModelResponse([_public(project, role) for project, role in mine])


@router.get("/{project_id}")
def get_project(access: ProjectViewer) -> ProjectPublic:
    return _public(access.project, access.role)


@router.patch("/{project_id}")
def update_project(body: ProjectUpdate, access: ProjectOwner, session: SessionDep) -> ProjectPublic:
    access.project.name = body.name
    session.commit()
    return _public(access.project, access.role)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(access: ProjectOwner, session: SessionDep, storage: StorageDep) -> None:
    """Deletes the project, its datasets, models, experiments and jobs (409 while a job is queued or running)."""
    projects.delete_project(session, storage, access.project)


@router.get("/{project_id}/members")
def list_members(access: ProjectViewer, session: SessionDep) -> list[MemberPublic]:
    return [_member(membership, user) for membership, user in projects.members(session, access.project_id)]


@router.post("/{project_id}/members", status_code=status.HTTP_201_CREATED)
def add_member(body: MemberCreate, access: ProjectOwner, session: SessionDep, idem: IdempotencyDep) -> MemberPublic:
    membership, user = projects.add_member(session, access.project, body.email, body.role)
    out = idem.remember(session, status.HTTP_201_CREATED, _member(membership, user))
    session.commit()
    return out


@router.patch("/{project_id}/members/{user_id}")
def change_role(user_id: str, body: MemberUpdate, access: ProjectOwner, session: SessionDep) -> MemberPublic:
    membership = projects.change_role(session, access.project, user_id, body.role)
    session.commit()
    return _member(membership, membership.user)


@router.delete("/{project_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(user_id: str, access: ProjectViewer, session: SessionDep) -> None:
    """Owners remove anyone; any member may remove themselves (leave)."""
    _check_may_remove(access, user_id)
    projects.remove_member(session, access.project, user_id)
    session.commit()


def _check_may_remove(access: ProjectAccess, user_id: str) -> None:
    if access.role != Role.OWNER and user_id != access.principal.user_id:
        raise ForbiddenError("only owners can remove other members")
