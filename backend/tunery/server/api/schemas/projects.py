"""Projects, members and experiments."""

from __future__ import annotations

from datetime import datetime

from tunery.server.api.schemas.base import Email, Name, Public, Request, Slug, Title
from tunery.server.db.models import Role


class ProjectCreate(Request):
    name: Title
    slug: Slug | None = None


class ProjectUpdate(Request):
    name: Title


class ProjectPublic(Public):
    id: str
    name: str
    slug: str
    created_at: datetime
    role: Role


class MemberCreate(Request):
    email: Email
    role: Role = Role.MEMBER


class MemberUpdate(Request):
    role: Role


class MemberPublic(Public):
    user_id: str
    email: str
    role: Role
    created_at: datetime


class ExperimentCreate(Request):
    name: Name
    description: str | None = None


class ExperimentUpdate(Request):
    description: str | None = None


class ExperimentPublic(Public):
    id: str
    project_id: str
    name: str
    description: str | None
    created_at: datetime
