"""Job events: ``GET /api/jobs/{id}/events?after=SEQ`` and the websocket ``/api/jobs/{id}/stream?after=SEQ``.

The websocket authenticates with ``?token=`` or, for browsers, the subprotocols ``["bearer", TOKEN]`` (the
server answers with ``bearer``). It replays missed events from the DB, then pushes live ones, each exactly
once in seq order, and ends with ``{"type": "end", "status": ..., "last_seq": ...}`` when the job finishes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from tunery.server import live
from tunery.server.api.deps import PrincipalDep, SessionDep
from tunery.server.api.schemas.jobs import EventPage
from tunery.server.auth.principal import authenticate
from tunery.server.config import Settings
from tunery.server.db.session import Database
from tunery.server.errors import ServiceError
from tunery.server.live import follow, load_events, open_subscription
from tunery.server.live.messages import encode
from tunery.server.services.jobs import visible_job

router = APIRouter(tags=["jobs"])
SUBPROTOCOL = "bearer"


@router.get("/api/jobs/{job_id}/events")
def job_events(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0, description="Only events with a greater seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> EventPage:
    visible_job(session, principal, job_id)
    events = load_events(session, job_id, after, limit)
    return EventPage(events=events, next_after=events[-1]["seq"] if events else after)


@router.websocket("/api/jobs/{job_id}/stream")
async def job_stream(
    websocket: WebSocket,
    job_id: str,
    after: Annotated[int, Query(ge=0)] = 0,
    token: Annotated[str | None, Query(description="A login token or API key (or use the subprotocol).")] = None,
) -> None:
    settings: Settings = websocket.app.state.settings
    database: Database = websocket.app.state.database
    credential, subprotocol = _credential(websocket, token)
    refusal = await run_in_threadpool(_refusal, database, settings, credential, job_id)
    if refusal is not None:
        await _deny(websocket, *refusal)
        return
    await websocket.accept(subprotocol=subprotocol)
    subscription = open_subscription(settings, database.sessions, job_id)

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(encode(message))

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_until_disconnect, websocket, group.cancel_scope)
            await follow(database.sessions, subscription, job_id, after, send, live.CHECK_INTERVAL_SECONDS)
            group.cancel_scope.cancel()
    except* WebSocketDisconnect:
        pass  # the client left
    if websocket.client_state == WebSocketState.CONNECTED:
        await websocket.close(status.WS_1000_NORMAL_CLOSURE)


def _credential(websocket: WebSocket, token: str | None) -> tuple[str | None, str | None]:
    """The credential from ``?token=`` or the subprotocols ``bearer, TOKEN``; and the subprotocol to answer."""
    offered: list[str] = list(websocket.scope.get("subprotocols") or [])
    if SUBPROTOCOL in offered:
        index = offered.index(SUBPROTOCOL)
        from_header = offered[index + 1] if index + 1 < len(offered) else None
        return token or from_header, SUBPROTOCOL
    return token, None


def _refusal(database: Database, settings: Settings, credential: str | None, job_id: str) -> tuple[int, str] | None:
    """None when the credential may read the job; else the HTTP status and reason to refuse with."""
    if not credential:
        return status.HTTP_401_UNAUTHORIZED, "not authenticated: pass ?token= or the bearer subprotocol"
    with database.session() as session:
        secret = settings.secret_key.get_secret_value()
        principal = authenticate(session, credential, secret, datetime.now(UTC))
        if principal is None:
            return status.HTTP_401_UNAUTHORIZED, "invalid, expired or revoked credentials"
        session.commit()  # an API key's last use
        if not principal.allows("GET"):
            return status.HTTP_403_FORBIDDEN, "this API key lacks the read scope"
        try:
            visible_job(session, principal, job_id)
        except ServiceError as exc:
            return exc.status_code, exc.detail
    return None


async def _deny(websocket: WebSocket, status_code: int, detail: str) -> None:
    """Refuse the handshake with an HTTP answer where the server allows it, else close (HTTP 403)."""
    try:
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status_code))
    except RuntimeError:  # no websocket.http.response extension
        await websocket.close(code=4000 + status_code)


async def _until_disconnect(websocket: WebSocket, scope: anyio.CancelScope) -> None:
    """Read (and ignore) what the client sends; stop the stream when it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            scope.cancel()
            return
