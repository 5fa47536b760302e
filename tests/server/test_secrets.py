"""Project secrets: names for members, values in (owners and admins) and never out, encrypted at rest under
a key derived from the server's secret key; migration 0003 up and down."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from tests.server.conftest import new_pg_database
from tests.server.factories import Factory
from tunery.server.config import Settings
from tunery.server.db.models import ProjectSecret, Role
from tunery.server.db.session import Database, create_db_engine
from tunery.server.services import secrets

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123456789"


def test_secret_routes_and_roles(client: TestClient, factory: Factory, database: Database) -> None:
    member, viewer, admin = factory.user(), factory.user(), factory.user(admin=True)
    project = factory.project(members={member: Role.MEMBER, viewer: Role.VIEWER, admin: Role.MEMBER})
    url = f"/api/projects/{project.id}/secrets"
    owner = project.owner.headers

    put = client.put(f"{url}/HF", json={"value": TOKEN}, headers=owner)
    assert put.status_code == 200, put.text
    assert set(put.json()) == {"name", "created_at", "updated_at"} and put.json()["name"] == "HF"
    assert client.put(f"{url}/HF", json={"value": TOKEN}, headers=member.headers).status_code == 403
    assert client.put(f"{url}/OTHER", json={"value": "x"}, headers=admin.headers).status_code == 200
    assert client.put(f"{url}/bad name", json={"value": "x"}, headers=owner).status_code == 422
    assert client.put(f"{url}/EMPTY", json={"value": ""}, headers=owner).status_code == 422

    listed = client.get(url, headers=member.headers)
    assert [s["name"] for s in listed.json()] == ["HF", "OTHER"]
    assert client.get(url, headers=viewer.headers).status_code == 403
    assert client.get(url, headers=factory.user().headers).status_code == 404
    assert client.get(f"/api/projects/{factory.project().id}/secrets", headers=owner).status_code == 404

    again = client.put(f"{url}/HF", json={"value": TOKEN + "2"}, headers=owner).json()
    assert again["created_at"] == put.json()["created_at"] and again["updated_at"] > put.json()["updated_at"]
    for response in (put, listed, client.get(url, headers=owner)):
        assert TOKEN not in response.text

    assert client.delete(f"{url}/HF", headers=member.headers).status_code == 403
    assert client.delete(f"{url}/HF", headers=owner).status_code == 204
    assert client.delete(f"{url}/HF", headers=owner).status_code == 404
    assert [s["name"] for s in client.get(url, headers=owner).json()] == ["OTHER"]


def test_values_are_encrypted_at_rest(factory: Factory, database: Database, settings: Settings) -> None:
    project = factory.project()
    with database.session() as session:
        secrets.put_secret(session, settings, project.id, "HF", TOKEN)
        session.commit()
    with database.engine.connect() as connection:
        stored = connection.execute(text("SELECT value_encrypted FROM project_secrets")).scalar_one()
    assert TOKEN not in stored and stored.startswith("gAAAAA")  # a Fernet token
    with database.session() as session:
        assert secrets.secret_value(session, settings, project.id, "HF") == TOKEN
        assert secrets.secret_value(session, settings, project.id, "NOPE") is None
        other_key = settings.model_copy(update={"secret_key": SecretStr("another key")})
        with pytest.raises(secrets.SecretUnreadable, match="secret key changed"):
            secrets.secret_value(session, other_key, project.id, "HF")
        row = session.query(ProjectSecret).one()
        assert TOKEN not in repr(row.__dict__)


def test_migration_0003_up_and_down() -> None:
    from alembic import command
    from sqlalchemy import inspect

    from tunery.server.migrations import alembic_config, upgrade_head

    with new_pg_database() as url:
        engine = create_db_engine(url)
        try:
            with engine.connect() as connection:
                command.upgrade(alembic_config(connection), "0002")
                connection.commit()
                connection.execute(
                    text(
                        "INSERT INTO projects (id, name, slug, created_at) VALUES ('p', 'p', 'p', now());"
                        "INSERT INTO jobs (id, project_id, kind, spec, status, cancel_requested, attempt, "
                        "max_attempts, gpu_count, gpus, queue, progress, last_seq, created_at, stopped_early) VALUES "
                        "('j', 'p', 'train', '{}', 'succeeded', false, 1, 3, 0, '[]', 'gpu', '{}', 0, now(), false);"
                        "INSERT INTO artifacts (id, job_id, name, kind, path, size_bytes, created_at) "
                        "VALUES ('a', 'j', 'adapter_model.safetensors', 'adapter', 'x', 1, now())"
                    )
                )
                connection.commit()
            upgrade_head(engine)
            with engine.connect() as connection:
                row = connection.execute(text("SELECT format, quantization, details FROM artifacts")).one()
                assert tuple(row) == (None, None, {})
                assert connection.execute(text("SELECT export FROM jobs")).scalar_one() is None
            assert "project_secrets" in inspect(engine).get_table_names()
            with engine.connect() as connection:
                command.downgrade(alembic_config(connection), "0002")
                connection.commit()
            inspector = inspect(engine)
            assert "project_secrets" not in inspector.get_table_names()
            assert {c["name"] for c in inspector.get_columns("artifacts")}.isdisjoint({"format", "details"})
            upgrade_head(engine)
            assert "project_secrets" in inspect(engine).get_table_names()
        finally:
            engine.dispose()


def test_migration_0003_down_and_up_on_sqlite(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from tunery.server.migrations import alembic_config, upgrade_head

    engine = create_db_engine(f"sqlite:///{tmp_path / 'tunery.db'}")
    try:
        upgrade_head(engine)
        with engine.connect() as connection:
            command.downgrade(alembic_config(connection), "0002")
            connection.commit()
        assert "project_secrets" not in inspect(engine).get_table_names()
        upgrade_head(engine)
        assert {c["name"] for c in inspect(engine).get_columns("artifacts")} >= {"format", "quantization", "details"}
    finally:
        engine.dispose()
