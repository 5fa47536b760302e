"""Short-lived signed download links: a browser downloads a large artifact with a plain link (streamed to disk,
resumable with Range) instead of fetching it into memory to attach the bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tunery.server.auth.tokens import read_claims, sign_claims

PREFIX = "tnd_"
TTL_SECONDS = 600


@dataclass(frozen=True)
class DownloadGrant:
    user_id: str
    job_id: str
    name: str


def issue_link_token(grant: DownloadGrant, secret: str, now: datetime) -> tuple[str, datetime]:
    expires = now + timedelta(seconds=TTL_SECONDS)
    claims = {"sub": grant.user_id, "job": grant.job_id, "name": grant.name, "exp": int(expires.timestamp())}
    return sign_claims(PREFIX, claims, secret), expires


def read_link_token(token: str, secret: str, now: datetime) -> DownloadGrant | None:
    claims = read_claims(PREFIX, token, secret, now)
    if claims is None:
        return None
    fields = (claims.get("sub"), claims.get("job"), claims.get("name"))
    if not all(isinstance(value, str) for value in fields):
        return None
    return DownloadGrant(str(fields[0]), str(fields[1]), str(fields[2]))
