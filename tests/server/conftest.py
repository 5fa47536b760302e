"""Server test fixtures (PostgreSQL at 127.0.0.1:5432 and Redis at :6379 must run: `make services`).

Session:
  ``pg_url``        URL of a fresh PostgreSQL database for this test session, migrated to head, dropped at
                    the end. Created through TUNERY_TEST_ADMIN_URL (default
                    postgresql+psycopg://postgres@127.0.0.1:5432/test), or TUNERY_DATABASE_URL if that is a
                    PostgreSQL URL; its database is only used to CREATE / DROP the test database.
  ``new_pg_database()`` (function in this module) -> context manager giving another empty database URL.
Per test:
  ``settings``      Settings on ``pg_url`` with a temporary home and storage root, secret key "test-secret",
                    upload limit 1 MiB, broker Redis db 15, model dirs [<tmp>/models].
  ``database``      Database on ``settings``; every table is emptied after the test.
  ``app``           create_app(settings).
  ``client``        fastapi TestClient of ``app`` (lifespan run: migrations, storage folders).
  ``factory``       tests.server.factories.Factory: ``factory.user(email=None, password=PASSWORD, admin=False)``
                    -> UserHandle(id, email, password, token, .headers); ``factory.project(owner=None,
                    name=None, members={user: Role.VIEWER})`` -> ProjectHandle(id, slug, owner);
                    ``factory.member(project, user, role)``; ``factory.api_key(user, scopes, expires_at)`` -> key.
  ``owner``         a user owning ``project`` (a ProjectHandle fixture); ``bearer(credential)`` builds headers.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.server.factories import Factory, ProjectHandle, UserHandle
from tests.server.worker_support import RedisServer, Stack
from tunery.server.api.app import create_app
from tunery.server.config import Settings
from tunery.server.db.base import Base
from tunery.server.db.session import Database, create_db_engine
from tunery.server.migrations import upgrade_head

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TEST_SECRET = "test-secret"
TEST_BROKER = "redis://127.0.0.1:6379/15"


def admin_url() -> str:
    url = os.environ.get("TUNERY_TEST_ADMIN_URL") or os.environ.get("TUNERY_DATABASE_URL") or ""
    return url if url.startswith("postgresql") else DEFAULT_ADMIN_URL


@contextmanager
def new_pg_database() -> Iterator[str]:
    """An empty PostgreSQL database ``tunery_test_<random>``, dropped on exit."""
    name = f"tunery_test_{secrets.token_hex(6)}"
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (make_url(admin_url()).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with new_pg_database() as url:
        engine = create_db_engine(url)
        upgrade_head(engine)
        engine.dispose()
        yield url


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    return Settings(
        home=home,
        database_url=pg_url,
        broker_url=TEST_BROKER,
        storage_root=tmp_path / "storage",
        secret_key=SecretStr(TEST_SECRET),
        upload_limit_bytes=1024 * 1024,
        model_dirs=(tmp_path / "models",),
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(settings)
    yield database
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    database.dispose()


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def factory(database: Database, settings: Settings) -> Factory:
    return Factory(database, settings)


@pytest.fixture
def project(factory: Factory) -> ProjectHandle:
    return factory.project()


@pytest.fixture
def owner(project: ProjectHandle) -> UserHandle:
    return project.owner


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis for the module's worker tests (they restart it)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(pg_url: str, tmp_path: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """`tunery worker` / `tunery scheduler` processes on the test database and the private Redis."""
    stack = Stack(tmp_path, pg_url, redis_server.url, TUNERY_REDIS_URL=redis_server.url)
    yield stack
    stack.close()
