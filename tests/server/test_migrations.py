"""Migrations: ``upgrade head`` on empty PostgreSQL and SQLite databases gives exactly the models' schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from tests.server.conftest import new_pg_database
from tunery.server.db.base import Base
from tunery.server.db.session import create_db_engine
from tunery.server.migrations import (
    current_revision,
    head_revision,
    is_at_head,
    upgrade_head,
)


def _diffs(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def _check_upgrade(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert not is_at_head(engine)
    upgrade_head(engine)
    assert current_revision(engine) == head_revision()
    assert is_at_head(engine)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    assert _diffs(engine) == []
    upgrade_head(engine)  # a second start is a no-op
    assert is_at_head(engine)


def test_upgrade_head_on_empty_postgresql_matches_models() -> None:
    with new_pg_database() as url:
        engine = create_db_engine(url)
        try:
            _check_upgrade(engine)
        finally:
            engine.dispose()


def test_upgrade_head_on_empty_sqlite_matches_models(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sub' / 'tunery.db'}")
    try:
        _check_upgrade(engine)
    finally:
        engine.dispose()


def test_compare_finds_a_difference_when_models_and_database_disagree(
    tmp_path: Path,
) -> None:
    """The comparison above is not vacuous: a table missing from the database is reported."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'tunery.db'}")
    try:
        upgrade_head(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE job_log_lines")
        diffs = _diffs(engine)
        assert any(diff[0] == "add_table" and diff[1].name == "job_log_lines" for diff in diffs)
    finally:
        engine.dispose()


def test_enum_columns_store_the_api_words(tmp_path: Path) -> None:
    """Plain SQL sees 'queued', not 'QUEUED': workers may claim with raw UPDATE ... WHERE status='queued'."""
    from tunery.server.db.models import Job, JobStatus, Project
    from tunery.server.db.session import Database

    database = Database.from_url(f"sqlite:///{tmp_path / 'tunery.db'}")
    upgrade_head(database.engine)
    with database.session() as session:
        project = Project(name="p", slug="p")
        session.add(project)
        session.flush()
        session.add(Job(project_id=project.id, spec={}, status=JobStatus.QUEUED))
        session.commit()
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT status FROM jobs").scalar_one() == "queued"
    database.dispose()


def test_upgrading_a_database_with_jobs_fills_the_new_columns() -> None:
    """0001 -> 0002 on PostgreSQL with rows in place: existing jobs and checkpoints get the defaults."""
    from alembic import command
    from sqlalchemy import text

    from tunery.server.migrations import alembic_config

    with new_pg_database() as url:
        engine = create_db_engine(url)
        try:
            with engine.connect() as connection:
                command.upgrade(alembic_config(connection), "0001")
                connection.commit()
                connection.execute(
                    text(
                        "INSERT INTO projects (id, name, slug, created_at) VALUES ('p', 'p', 'p', now());"
                        "INSERT INTO jobs (id, project_id, kind, spec, status, cancel_requested, attempt, "
                        "max_attempts, gpu_count, gpus, queue, progress, last_seq, created_at) VALUES "
                        "('j', 'p', 'train', '{}', 'succeeded', false, 1, 3, 0, '[]', 'gpu', '{}', 0, now());"
                        "INSERT INTO checkpoints (id, job_id, step, path, deleted, created_at) "
                        "VALUES ('c', 'j', 2, 'x', false, now())"
                    )
                )
                connection.commit()
            upgrade_head(engine)
            with engine.connect() as connection:
                job = connection.execute(text("SELECT best_checkpoint_step, stopped_early FROM jobs")).one()
                assert tuple(job) == (None, False)
                assert connection.execute(text("SELECT best FROM checkpoints")).scalar_one() is False
            assert _diffs(engine) == []
        finally:
            engine.dispose()
