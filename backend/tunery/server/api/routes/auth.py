"""Login and the caller's own account."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep, unauthorized
from tunery.server.api.schemas.auth import LoginRequest, TokenPublic, UserPublic
from tunery.server.auth.tokens import issue_token
from tunery.server.services.users import check_login

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login")
def login(body: LoginRequest, session: SessionDep, settings: SettingsDep) -> TokenPublic:
    """Email and password -> a bearer token (expires after TUNERY_TOKEN_TTL_SECONDS)."""
    user = check_login(session, body.email, body.password.get_secret_value())
    if user is None:
        raise unauthorized("wrong email or password")
    token, expires = issue_token(
        user.id, settings.secret_key.get_secret_value(), datetime.now(UTC), settings.token_ttl_seconds
    )
    return TokenPublic(access_token=token, expires_at=expires)


@router.get("/me")
def me(principal: PrincipalDep) -> UserPublic:
    return UserPublic.model_validate(principal.user)
