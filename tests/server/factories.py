"""Rows for server tests, written straight to the database (fast, independent of the routes under test)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from tunery.server.auth.keys import create_api_key
from tunery.server.auth.tokens import issue_token
from tunery.server.config import Settings
from tunery.server.db.models import Membership, Role, User
from tunery.server.db.session import Database
from tunery.server.services.projects import create_project
from tunery.server.services.users import create_user

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class UserHandle:
    id: str
    email: str
    password: str
    token: str  # a login token, valid for an hour

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class ProjectHandle:
    id: str
    slug: str
    owner: UserHandle


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


class Factory:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def user(self, email: str | None = None, password: str = PASSWORD, *, admin: bool = False) -> UserHandle:
        email = email or f"user-{secrets.token_hex(4)}@example.com"
        with self.database.session() as session:
            user = create_user(session, email, password, admin=admin)
            session.commit()
            user_id = user.id
        secret = self.settings.secret_key.get_secret_value()
        token, _ = issue_token(user_id, secret, datetime.now(UTC), 3600)
        return UserHandle(user_id, email, password, token)

    def project(
        self,
        owner: UserHandle | None = None,
        *,
        name: str | None = None,
        members: dict[UserHandle, Role] | None = None,
    ) -> ProjectHandle:
        owner = owner or self.user()
        with self.database.session() as session:
            user = session.get(User, owner.id)
            assert user is not None
            project = create_project(session, user, name or f"project {secrets.token_hex(3)}")
            for member, role in (members or {}).items():
                session.add(Membership(project_id=project.id, user_id=member.id, role=role))
            session.commit()
            return ProjectHandle(project.id, project.slug, owner)

    def member(self, project: ProjectHandle, user: UserHandle, role: Role) -> None:
        with self.database.session() as session:
            session.add(Membership(project_id=project.id, user_id=user.id, role=role))
            session.commit()

    def api_key(
        self,
        user: UserHandle,
        scopes: tuple[str, ...] = ("read", "write"),
        expires_at: datetime | None = None,
    ) -> str:
        """A new API key of ``user`` (the plaintext)."""
        with self.database.session() as session:
            owner = session.get(User, user.id)
            assert owner is not None
            _, key = create_api_key(session, owner, "test key", sorted(scopes), expires_at)
            session.commit()
            return key
