"""Readiness checks: database reachable, migrations at head, broker reachable."""

from __future__ import annotations

from sqlalchemy import text

from tunery.server.config import Settings
from tunery.server.db.session import Database
from tunery.server.migrations import current_revision, head_revision

BROKER_TIMEOUT = 3.0


def check_database(database: Database) -> str | None:
    """None when fine, else what is wrong (no URL or password in it)."""
    try:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database unreachable ({type(exc).__name__})"
    return None


def check_migrations(database: Database) -> str | None:
    try:
        current, head = current_revision(database.engine), head_revision()
    except Exception as exc:
        return f"migration state unknown ({type(exc).__name__})"
    return None if current == head else f"database at revision {current}, code expects {head}"


def check_broker(settings: Settings) -> str | None:
    from kombu import Connection

    try:
        with Connection(settings.broker_url, connect_timeout=BROKER_TIMEOUT) as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
    except Exception as exc:
        return f"broker unreachable ({type(exc).__name__})"
    return None


def readiness(settings: Settings, database: Database) -> dict[str, str]:
    """Each check's result: "ok" or the problem."""
    database_problem = check_database(database)
    checks = {
        "database": database_problem,
        "migrations": database_problem or check_migrations(database),
        "broker": check_broker(settings),
    }
    return {name: problem or "ok" for name, problem in checks.items()}
