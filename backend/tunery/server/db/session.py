"""Engines and sessions from settings: ``Database.from_settings(settings)``, then ``with db.session() as s``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tunery.server.config import Settings

#: up to 30 connections in bursts: the API admits MAX_SESSIONS (6) requests with a session at once, and its
#: streams and idempotency records take short extra ones
POOL_SIZE, POOL_OVERFLOW = 5, 25
#: a pooled connection unused for longer is pinged before it is handed out (a database restart or an idle
#: timeout leaves dead connections in the pool); busier ones are not, which saves a round trip per request
PING_AFTER_IDLE_S = 5.0


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on, a busy timeout and its folder created."""
    parsed = make_url(url)
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    if parsed.get_backend_name() != "sqlite":
        # orjson parses JSON columns (job progress, specs, metrics) several times faster than json
        server_engine = create_engine(url, json_deserializer=orjson.loads, **{**pool, **kwargs})
        _ping_idle_connections(server_engine)
        return server_engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {**pool, **kwargs}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Like ``pool_pre_ping``, but only for connections idle longer than PING_AFTER_IDLE_S. A dead one is
    replaced (the pool retries the checkout on DisconnectionError); a disconnect seen later in use still
    invalidates the whole pool, as SQLAlchemy does by default."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in_at")
        if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE_S:
            return  # a new connection, or one used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure means the connection is unusable
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


@dataclass
class Database:
    """One engine and its session factory (sessions do not expire objects on commit)."""

    engine: Engine
    sessions: sessionmaker[Session]
    #: sessions whose statements each commit at once: no BEGIN/ROLLBACK round trips, for requests that
    #: only read (each statement sees committed data, as under READ COMMITTED anyway)
    autocommit_sessions: sessionmaker[Session]

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        engine = create_db_engine(url, **kwargs)
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        return cls(
            engine, sessionmaker(engine, expire_on_commit=False), sessionmaker(autocommit, expire_on_commit=False)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls.from_url(settings.database_url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that rolls back on error and is always closed; callers commit explicitly."""
        with self.sessions() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
