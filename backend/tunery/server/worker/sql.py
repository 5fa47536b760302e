"""Portable SQL helpers: insert-or-ignore and upsert on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session


def _insert(session: Session, model: type[DeclarativeBase]) -> Any:
    table = model.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {dialect!r} is not supported (use PostgreSQL or SQLite)")


def insert_ignore(
    session: Session, model: type[DeclarativeBase], values: Mapping[str, Any], keys: Sequence[str]
) -> bool:
    """INSERT the row unless one with the same ``keys`` exists; True when a row was inserted."""
    table = model.__table__
    assert isinstance(table, Table)
    statement = (
        _insert(session, model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(keys))
        .returning(table.c[keys[0]])  # rowcount is not reliable here; a returned row is
    )
    return session.execute(statement).first() is not None


def upsert(
    session: Session,
    model: type[DeclarativeBase],
    values: Mapping[str, Any],
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """INSERT the row, or UPDATE the ``update`` columns of the row with the same ``keys``."""
    statement = _insert(session, model).values(**values)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: getattr(excluded, name) for name in update}
    )
    session.execute(statement)
