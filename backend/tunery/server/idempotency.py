"""``Idempotency-Key`` on creating POSTs: the same key and request replays the first response; the same key
with a different request is refused (422); a repeat while the first is still running gets 409.

A route takes ``IdempotencyDep`` (the JSON body is hashed for it), creates its rows without committing, then
``return idem.remember(session, 201, out)`` and commits: the resource and the stored answer commit together.
Routes whose body is streamed (uploads) take ``ManualIdempotencyDep`` and call ``idem.begin(hash)`` themselves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tunery.server.api.deps import DatabaseDep, PrincipalDep
from tunery.server.db.models import IdempotencyKey
from tunery.server.db.session import Database
from tunery.server.errors import ConflictError, InvalidError

HEADER = "Idempotency-Key"
#: answers are kept this long; an unfinished first request older than ABANDONED is taken over
TTL = timedelta(hours=24)
ABANDONED = timedelta(minutes=10)
IN_PROGRESS = 0
T = TypeVar("T")


class IdempotentReplay(Exception):  # not an error: the app answers with the stored response
    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.body = body


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    """A hash of the request; JSON bodies are compared by content, not by spacing or key order."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode("utf-8")
    except ValueError:
        canonical = body
    digest = hashlib.sha256(f"{method.upper()}\n{path}\n{query}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


class Idempotency:
    """The idempotency state of one request; a no-op when the request carries no key."""

    def __init__(self, database: Database, user_id: str, key: str | None) -> None:
        if key is not None and not (0 < len(key) <= 200 and key.isprintable() and key.isascii()):
            raise InvalidError(f"{HEADER} must be 1 to 200 printable ASCII characters")
        self.database = database
        self.user_id = user_id
        self.key = key
        self.record_id: str | None = None

    def begin(self, digest: str) -> None:
        """Replay a stored answer (raises IdempotentReplay), refuse a mismatch, or claim the key."""
        if self.key is None:
            return
        now = datetime.now(UTC)
        with self.database.session() as session:
            found = session.scalar(
                select(IdempotencyKey).where(IdempotencyKey.user_id == self.user_id, IdempotencyKey.key == self.key)
            )
            if found is not None and self._still_valid(found, now):
                if found.request_hash != digest:
                    raise InvalidError(f"{HEADER} {self.key!r} was already used for a different request")
                if found.status_code == IN_PROGRESS:
                    raise ConflictError(f"a request with {HEADER} {self.key!r} is still in progress")
                raise IdempotentReplay(found.status_code, found.response)
            if found is not None:
                session.delete(found)
                session.flush()
            record = IdempotencyKey(
                user_id=self.user_id, key=self.key, request_hash=digest, status_code=IN_PROGRESS, response=""
            )
            session.add(record)
            try:
                session.commit()
            except IntegrityError as exc:
                raise ConflictError(f"a request with {HEADER} {self.key!r} is still in progress") from exc
            self.record_id = record.id

    @staticmethod
    def _still_valid(record: IdempotencyKey, now: datetime) -> bool:
        age = now - record.created_at
        return age < (ABANDONED if record.status_code == IN_PROGRESS else TTL)

    def remember(self, session: Session, status_code: int, body: T) -> T:
        """Store ``body`` as the answer for this key in ``session`` (the caller commits); returns ``body``."""
        if self.record_id is not None:
            record = session.get(IdempotencyKey, self.record_id)
            if record is not None:
                record.status_code = status_code
                record.response = json.dumps(jsonable_encoder(body))
        return body

    def abandon(self) -> None:
        """Forget the claim unless its answer was committed (the request failed), so the key can be reused."""
        if self.record_id is None:
            return
        with self.database.session() as session:
            session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.id == self.record_id, IdempotencyKey.status_code == IN_PROGRESS
                )
            )
            session.commit()


async def json_idempotency(
    request: Request, principal: PrincipalDep, database: DatabaseDep
) -> AsyncIterator[Idempotency]:
    """Claims the key for this request's JSON body before the route runs."""
    state = Idempotency(database, principal.user_id, request.headers.get(HEADER))
    if state.key is not None:
        digest = request_hash(request.method, request.url.path, request.url.query, await request.body())
        await run_in_threadpool(state.begin, digest)
    try:
        yield state
    finally:
        await run_in_threadpool(state.abandon)


async def manual_idempotency(
    request: Request, principal: PrincipalDep, database: DatabaseDep
) -> AsyncIterator[Idempotency]:
    """The route hashes its request itself and calls ``begin``."""
    state = Idempotency(database, principal.user_id, request.headers.get(HEADER))
    try:
        yield state
    finally:
        await run_in_threadpool(state.abandon)


IdempotencyDep = Annotated[Idempotency, Depends(json_idempotency, scope="function")]
ManualIdempotencyDep = Annotated[Idempotency, Depends(manual_idempotency, scope="function")]
