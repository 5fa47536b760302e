"""Login tokens: ``tnl_<payload>.<signature>``, HMAC-SHA256 signed with the secret key, expiring."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime, timedelta

PREFIX = "tnl_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, secret: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).digest())


def issue_token(user_id: str, secret: str, now: datetime, ttl_seconds: int) -> tuple[str, datetime]:
    """A signed token for ``user_id`` and when it expires."""
    expires = now + timedelta(seconds=ttl_seconds)
    body = json.dumps({"sub": user_id, "exp": int(expires.timestamp())}, separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    return f"{PREFIX}{payload}.{_sign(payload, secret)}", expires


def read_token(token: str, secret: str, now: datetime) -> str | None:
    """The user id of a valid, unexpired token; None for anything else."""
    if not token.startswith(PREFIX) or token.count(".") != 1:
        return None
    payload, signature = token[len(PREFIX) :].split(".")
    if not hmac.compare_digest(_sign(payload, secret), signature):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now.timestamp():
        return None
    return str(claims["sub"])
