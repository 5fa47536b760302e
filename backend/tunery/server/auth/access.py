"""Project access: a member sees a project with a role; anyone else gets 404, as if it did not exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ScalarSelect, Select, select
from sqlalchemy.orm import Session

from tunery.server.auth.principal import Principal
from tunery.server.db.models import Membership, Project, Role
from tunery.server.errors import ForbiddenError, NotFoundError

RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.OWNER: 2}


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: Role
    principal: Principal

    @property
    def project_id(self) -> str:
        return self.project.id


def member_project_ids(user_id: str) -> Select[str]:
    """The ids of the user's projects, for ``Model.project_id.in_(...)`` filters."""
    return select(Membership.project_id).where(Membership.user_id == user_id)


def require_access(
    session: Session, principal: Principal, project_ref: str, minimum: Role = Role.VIEWER, *, what: str = "project"
) -> ProjectAccess:
    """The caller's access to a project (by id or slug) with at least ``minimum``.

    Not a member: NotFoundError (404, mentioning ``what``). A member below ``minimum``: ForbiddenError (403).
    """
    row = session.execute(
        select(Project, Membership.role)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == principal.user_id, (Project.id == project_ref) | (Project.slug == project_ref))
    ).first()
    if row is None:
        raise NotFoundError(f"{what} not found")
    project, role = row
    check_role(role, minimum)
    return ProjectAccess(project, role, principal)


def role_in_project(user_id: str, project_id: Any) -> ScalarSelect[Role]:
    """The user's role in ``project_id`` (a column or value) as a scalar subquery; NULL when not a member."""
    return (
        select(Membership.role)
        .where(Membership.project_id == project_id, Membership.user_id == user_id)
        .scalar_subquery()
    )


def check_role(role: Role, minimum: Role) -> None:
    """ForbiddenError (403) when ``role`` is below ``minimum``."""
    if RANK[role] < RANK[minimum]:
        raise ForbiddenError(f"this needs the {minimum.value} role in the project; you are {role.value}")
