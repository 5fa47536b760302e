"""The caller's API keys: create (the key is shown once), list, revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, status
from sqlalchemy import select

from tunery.server.api.deps import PrincipalDep, SessionDep
from tunery.server.api.schemas.auth import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from tunery.server.auth.keys import ScopeError, check_scopes, create_api_key
from tunery.server.db.models import ApiKey
from tunery.server.errors import InvalidError, NotFoundError

router = APIRouter(prefix="/api/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, principal: PrincipalDep, session: SessionDep) -> ApiKeyCreated:
    """A new key for the caller; its scopes cannot exceed those of the credential used to create it.

    Not idempotent on purpose: a stored answer would keep the plaintext key in the database.
    """
    try:
        scopes = check_scopes(body.scopes, principal.scopes)
    except ScopeError as exc:
        raise InvalidError(str(exc)) from exc
    days = body.expires_in_days
    expires = datetime.now(UTC) + timedelta(days=days) if days is not None else None
    row, key = create_api_key(session, principal.user, body.name, scopes, expires)
    out = ApiKeyCreated.model_validate({**ApiKeyPublic.model_validate(row).model_dump(), "key": key})
    session.commit()
    return out


@router.get("")
def list_keys(principal: PrincipalDep, session: SessionDep) -> list[ApiKeyPublic]:
    rows = session.scalars(select(ApiKey).where(ApiKey.user_id == principal.user_id).order_by(ApiKey.created_at))
    return [ApiKeyPublic.model_validate(row) for row in rows]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: str, principal: PrincipalDep, session: SessionDep) -> None:
    """Revoke one of the caller's keys; it is refused (401) from now on."""
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != principal.user_id:
        raise NotFoundError("API key not found")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.commit()
