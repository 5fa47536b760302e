"""The connection pool on PostgreSQL: idle connections are pinged and replaced when dead, busy ones are not
pinged; read requests get autocommit sessions (no transaction left open), writes get transactions."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from tests.server.conftest import admin_url
from tests.server.factories import UserHandle
from tunery.server.db import session as db_session
from tunery.server.db.session import Database


def backend_pid(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pid: int) -> None:
    admin = Database.from_url(admin_url())
    try:
        with admin.engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            connection.commit()
    finally:
        admin.dispose()


@pytest.fixture
def small_pool(pg_url: str) -> Iterator[Database]:
    database = Database.from_url(pg_url, pool_size=1, max_overflow=0)
    yield database
    database.dispose()


def count_pings(engine: Engine) -> list[int]:
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(1)
        return original(dbapi_connection)  # type: ignore[arg-type]

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    return pings


def test_a_dead_idle_connection_is_replaced(small_pool: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    first = backend_pid(small_pool)
    terminate(first)  # as a database restart or an idle timeout would
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_S", 0.0)
    pings = count_pings(small_pool.engine)
    with small_pool.session() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1
    assert pings, "the idle connection was not pinged"
    assert backend_pid(small_pool) != first


def test_a_connection_used_moments_ago_is_not_pinged(small_pool: Database) -> None:
    backend_pid(small_pool)
    pings = count_pings(small_pool.engine)
    for _ in range(3):
        backend_pid(small_pool)
    assert pings == []


def test_read_requests_leave_no_transaction_open(client: TestClient, owner: UserHandle) -> None:
    """After each statement: is the server-side connection inside a transaction (psycopg's status)?"""
    in_transaction: list[bool] = []

    def after(connection: Connection, *_: object) -> None:
        status = connection.connection.dbapi_connection.info.transaction_status  # type: ignore[union-attr]
        in_transaction.append(status != psycopg.pq.TransactionStatus.IDLE)

    event.listen(client.app.state.database.engine, "after_cursor_execute", after)  # type: ignore[attr-defined]
    assert client.get("/api/projects", headers=owner.headers).status_code == 200
    assert client.get("/api/jobs", headers=owner.headers).status_code == 200
    assert in_transaction and not any(in_transaction)  # autocommit: nothing open, nothing to roll back
    in_transaction.clear()
    created = client.post("/api/projects", headers=owner.headers, json={"name": "Written in a transaction"})
    assert created.status_code == 201, created.text
    assert in_transaction and all(in_transaction), "a write request ran outside a transaction"
