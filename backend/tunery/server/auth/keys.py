"""API keys ``tny_<prefix>_<secret>``: shown once, stored as sha256, found by prefix; scopes, expiry, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.db.models import ApiKey, User

PREFIX = "tny_"
#: what a key may do: ``read`` GET requests, ``write`` everything else
SCOPES = ("read", "write")
#: last use is written at most this often, so reads do not each cost a write
LAST_USE_RESOLUTION = timedelta(minutes=1)


class ScopeError(ValueError):
    """A key request that cannot be granted (unknown scope, scopes beyond the caller's)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its public prefix."""
    prefix = secrets.token_hex(6)
    return f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def check_scopes(scopes: list[str], allowed: frozenset[str] | None = None) -> list[str]:
    """``scopes`` sorted and checked against SCOPES and, when given, the scopes of the caller."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ScopeError(f"unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}")
    if allowed is not None and not set(scopes) <= allowed:
        raise ScopeError("a key cannot get scopes its creator's credentials do not have")
    if not scopes:
        raise ScopeError("a key needs at least one scope")
    return sorted(set(scopes))


def create_api_key(
    session: Session, user: User, name: str, scopes: list[str], expires_at: datetime | None
) -> tuple[ApiKey, str]:
    """Adds the key row (not committed) and returns it with the plaintext key, which is never stored."""
    key, prefix = new_key()
    row = ApiKey(
        user_id=user.id, name=name, prefix=prefix, key_hash=hash_key(key), scopes=scopes, expires_at=expires_at
    )
    session.add(row)
    session.flush()
    return row, key


def find_api_key(session: Session, key: str, now: datetime) -> ApiKey | None:
    """The live key row for ``key`` (not revoked, not expired, hash matches); records its last use."""
    if not key.startswith(PREFIX) or key.count("_") < 2:
        return None
    prefix = key[len(PREFIX) :].split("_", 1)[0]
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USE_RESOLUTION:
        row.last_used_at = now
    return row
