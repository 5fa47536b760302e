"""Who is calling: a user with the scopes of their credential (a login token has every scope)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tunery.server.auth.keys import PREFIX as KEY_PREFIX
from tunery.server.auth.keys import SCOPES, find_api_key
from tunery.server.auth.tokens import read_token
from tunery.server.db.models import User

#: HTTP methods that only read; everything else needs the ``write`` scope
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user: User
    scopes: frozenset[str]
    api_key_id: str | None = None  # None: a login token

    @property
    def user_id(self) -> str:
        return self.user.id

    def allows(self, method: str) -> bool:
        return ("read" if method.upper() in READ_METHODS else "write") in self.scopes


def authenticate(session: Session, credential: str, secret: str, now: datetime) -> Principal | None:
    """The principal for a bearer credential (login token or API key); None when it is not valid."""
    if credential.startswith(KEY_PREFIX):
        key = find_api_key(session, credential, now)
        if key is None:
            return None
        user = session.get(User, key.user_id)
        principal = Principal(user, frozenset(key.scopes), key.id) if user is not None else None
    else:
        user_id = read_token(credential, secret, now)
        user = session.get(User, user_id) if user_id else None
        principal = Principal(user, frozenset(SCOPES)) if user is not None else None
    if principal is None or not principal.user.is_active:
        return None
    return principal
