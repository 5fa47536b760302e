"""Login tokens: ``tnl_<payload>.<signature>``, HMAC-SHA256 signed with the secret key, expiring."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

PREFIX = "tnl_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, secret: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).digest())


def _signature(prefix: str, payload: str, secret: str) -> str:
    # other kinds sign their prefix too, so that no token can be relabelled as another kind (login tokens
    # keep their original form: tokens issued before stay valid)
    return _sign(payload if prefix == PREFIX else prefix + payload, secret)


def sign_claims(prefix: str, claims: dict[str, Any], secret: str) -> str:
    """``<prefix><payload>.<signature>``: the claims as signed JSON (the prefix keeps token kinds apart)."""
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    return f"{prefix}{payload}.{_signature(prefix, payload, secret)}"


def read_claims(prefix: str, token: str, secret: str, now: datetime) -> dict[str, Any] | None:
    """The claims of a valid token of this kind whose ``exp`` has not passed; None for anything else."""
    if not token.startswith(prefix) or token.count(".") != 1:
        return None
    payload, signature = token[len(prefix) :].split(".")
    if not hmac.compare_digest(_signature(prefix, payload, secret), signature):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now.timestamp():
        return None
    return claims


def issue_token(user_id: str, secret: str, now: datetime, ttl_seconds: int) -> tuple[str, datetime]:
    """A signed token for ``user_id`` and when it expires."""
    expires = now + timedelta(seconds=ttl_seconds)
    return sign_claims(PREFIX, {"sub": user_id, "exp": int(expires.timestamp())}, secret), expires


def read_token(token: str, secret: str, now: datetime) -> str | None:
    """The user id of a valid, unexpired token; None for anything else."""
    claims = read_claims(PREFIX, token, secret, now)
    if claims is None or not isinstance(claims.get("sub"), str):
        return None
    return str(claims["sub"])
