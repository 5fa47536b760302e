"""FastAPI dependencies as ``Annotated`` aliases: settings, DB session, storage, caller, project access.

The ones that do no I/O are ``async def``: FastAPI runs a sync dependency in the threadpool, a hop per call.

Routes use them as parameter types, e.g. ``def f(session: SessionDep, access: ProjectMember)`` with a
``{project_id}`` path parameter (an id or a slug). Item routes load their row and call ``require_access``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tunery.server.auth.access import ProjectAccess, require_access
from tunery.server.auth.principal import READ_METHODS, Principal, authenticate
from tunery.server.config import Settings
from tunery.server.db.models import Role
from tunery.server.db.session import Database
from tunery.server.storage import Storage

_bearer = HTTPBearer(auto_error=False, description="A login token (POST /api/auth/login) or an API key")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
StorageDep = Annotated[Storage, Depends(get_storage)]


async def get_session(request: Request, database: DatabaseDep) -> AsyncIterator[Session]:
    """One session per request; routes and services commit explicitly, anything uncommitted is rolled back
    (by ``close``, which returns the connection to the pool; it runs in the threadpool, as it does I/O).
    Read requests (GET, HEAD) get an autocommit session: two round trips fewer, nothing to roll back, and
    closed without the threadpool hop."""
    reads = request.method in READ_METHODS
    session = (database.autocommit_sessions if reads else database.sessions)()  # no I/O until first used
    try:
        yield session
    finally:
        if reads:  # an autocommit connection goes back to the pool without a round trip
            session.close()
        else:
            await run_in_threadpool(session.close)


#: requests holding a DB session at once, per server process; more wait their turn without holding a thread.
#: Below the pool's size (db/session.py): a request never waits for a connection while holding a thread that
#: the requests holding connections need to finish (that deadlocked an overloaded server until pool timeouts).
#: Small: past a few, more threads only contend for the GIL; at 200 requests/s on one process (bench/) 20
#: let the server fall behind for good, 6 kept it serving. A slow request (a dataset preview) holds one.
MAX_SESSIONS = 6
SessionDep = Annotated[Session, Depends(get_session, max_concurrency=MAX_SESSIONS)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def current_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller from ``Authorization: Bearer <login token or API key>``; 401 if missing or not valid."""
    if credentials is None:
        raise unauthorized("not authenticated: send Authorization: Bearer <token or API key>")
    now = datetime.now(UTC)
    principal = authenticate(session, credentials.credentials, settings.secret_key.get_secret_value(), now)
    if principal is None:
        raise unauthorized("invalid, expired or revoked credentials")
    if principal.api_key_id is not None:  # keeps the key's last use (flushed already by later queries)
        session.commit()
    if not principal.allows(request.method):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key lacks the scope for this request")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def project_access(minimum: Role) -> Callable[[str, Session, Principal], ProjectAccess]:
    """A dependency giving the caller's access to ``{project_id}``: 404 if not a member, 403 if below ``minimum``."""

    def dependency(project_id: str, session: SessionDep, principal: PrincipalDep) -> ProjectAccess:
        return require_access(session, principal, project_id, minimum)

    return dependency


ProjectViewer = Annotated[ProjectAccess, Depends(project_access(Role.VIEWER))]
ProjectMember = Annotated[ProjectAccess, Depends(project_access(Role.MEMBER))]
ProjectOwner = Annotated[ProjectAccess, Depends(project_access(Role.OWNER))]
