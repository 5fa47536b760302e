"""Users: creation (CLI, admins) and password login."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.auth.passwords import hash_password, verify_password
from tunery.server.db.models import User
from tunery.server.errors import ConflictError


def find_user(session: Session, email: str) -> User | None:
    """Emails are stored lower-cased, so this uses the unique index."""
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def create_user(session: Session, email: str, password: str | None, *, admin: bool = False) -> User:
    """Adds a user (not committed); ``password`` None makes an account usable only with API keys."""
    email = email.strip().lower()
    if find_user(session, email) is not None:
        raise ConflictError(f"a user with email {email} already exists")
    user = User(email=email, password_hash=hash_password(password) if password else None, is_admin=admin)
    session.add(user)
    session.flush()
    return user


def check_login(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password; None otherwise (same work either way)."""
    user = find_user(session, email)
    matches = verify_password(password, user.password_hash if user is not None else None)
    return user if user is not None and user.is_active and matches else None
