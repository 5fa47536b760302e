"""First start: the admin, the Default project, the demo datasets and the demo model; later starts add nothing.

Runs on SQLite and PostgreSQL. The demo model is registered from an already converted folder (the real GGUF
conversion takes about a minute of CPU; ``ensure_demo_model`` keeps a converted folder as it is).
"""

from __future__ import annotations

import logging
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tunery.engine import demo_model
from tunery.server.bootstrap import DEFAULT_ADMIN_EMAIL, bootstrap, demo_model_marker, login_hint, password_file
from tunery.server.config import Settings
from tunery.server.db.models import Dataset, DatasetVersion, Membership, Project, RegisteredModel, Role, User
from tunery.server.db.session import Database
from tunery.server.demo_model_setup import setup_demo_model, start_in_background
from tunery.server.migrations import upgrade_head
from tunery.server.services.users import check_login

COUNTED = (User, Project, Membership, Dataset, DatasetVersion, RegisteredModel)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Settings, Database]]:
    """Settings and a migrated, empty database of either kind."""
    if request.param == "postgresql":  # the session's database (conftest), emptied after the test
        yield request.getfixturevalue("settings"), request.getfixturevalue("database")
        return
    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'tunery.db'}",
        broker_url="memory://",
        storage_root=tmp_path / "storage",
        secret_key=SecretStr("test-secret"),
        model_dirs=(home / "models",),
    )
    database = Database.from_settings(settings)
    upgrade_head(database.engine)
    yield settings, database
    database.dispose()


def counts(session: Session) -> dict[str, int]:
    return {model.__name__: session.scalar(select(func.count()).select_from(model)) or 0 for model in COUNTED}


def test_first_start_creates_admin_project_and_demo_datasets_and_a_second_start_nothing(
    backend: tuple[Settings, Database],
) -> None:
    settings, database = backend
    first = bootstrap(settings, database, env={})
    assert first.created and first.admin_email == DEFAULT_ADMIN_EMAIL and first.password
    stored = password_file(settings)
    assert first.password_file == stored and stored.read_text().strip() == first.password
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert demo_model_marker(settings).exists()
    hint = login_hint(first, settings)
    assert hint is not None and first.password in hint and str(stored) in hint

    with database.session() as session:
        admin = check_login(session, DEFAULT_ADMIN_EMAIL, first.password)
        assert admin is not None and admin.is_admin
        project = session.scalars(select(Project)).one()
        assert (project.name, project.id) == ("Default", first.project_id)
        membership = session.scalars(select(Membership)).one()
        assert (membership.user_id, membership.role) == (admin.id, Role.OWNER)
        datasets = {d.name: d for d in session.scalars(select(Dataset).where(Dataset.project_id == project.id))}
        assert sorted(datasets) == sorted(first.datasets) == ["tunery_identity", "tunery_identity_dpo"]
        for name, stage in (("tunery_identity", "sft"), ("tunery_identity_dpo", "dpo")):
            (version,) = datasets[name].versions
            assert (version.version, version.stage, version.status) == (1, stage, "valid"), version.report
            assert version.rows_total and version.rows_valid == version.rows_total
            assert version.report["errors"] == [] and version.report["validated_at"]
            folder = settings.storage_root / version.storage_path
            data_file = folder / version.info["file_name"]
            assert (folder / "dataset_info.json").exists() and not data_file.stat().st_mode & 0o222  # read-only
        before = counts(session)

    second = bootstrap(settings, database, env={})
    assert not second.created and second.password is None and second.admin_email == DEFAULT_ADMIN_EMAIL
    assert stored.read_text().strip() == first.password
    hint = login_hint(second, settings)
    assert hint is not None and str(stored) in hint and first.password not in hint
    with database.session() as session:
        assert counts(session) == before


def test_admin_from_the_environment_and_no_demo(backend: tuple[Settings, Database]) -> None:
    settings, database = backend
    env = {"TUNERY_ADMIN_EMAIL": "Boss@Example.com", "TUNERY_ADMIN_PASSWORD": "a long admin password"}
    env["TUNERY_DEMO"] = "0"
    result = bootstrap(settings, database, env)
    assert result.created and result.password is None and result.datasets == []
    assert not password_file(settings).exists() and not demo_model_marker(settings).exists()
    assert "a long admin password" not in (login_hint(result, settings) or "")
    with database.session() as session:
        assert check_login(session, "boss@example.com", "a long admin password") is not None
        assert counts(session) == {
            "User": 1, "Project": 1, "Membership": 1, "Dataset": 0, "DatasetVersion": 0, "RegisteredModel": 0
        }  # fmt: skip


def test_a_weak_admin_password_stops_the_start_without_creating_anything(backend: tuple[Settings, Database]) -> None:
    settings, database = backend
    with pytest.raises(SystemExit, match="TUNERY_ADMIN_PASSWORD refused"):
        bootstrap(settings, database, {"TUNERY_ADMIN_PASSWORD": "short"})
    with database.session() as session:
        assert counts(session)["User"] == 0


def test_the_demo_model_is_registered_once_as_a_shared_model(
    backend: tuple[Settings, Database], tiny_llama: Path
) -> None:
    settings, database = backend
    bootstrap(settings, database, env={})
    converted = settings.home / "models" / demo_model.DEMO_MODEL_NAME
    shutil.copytree(tiny_llama, converted)  # as ensure_demo_model leaves it after converting

    model = setup_demo_model(settings, database)
    assert model is not None and model.name == "SmolLM2-135M-Instruct" and model.project_id is None
    assert model.path_or_hub_id == str(converted.resolve()) and model.template in ("auto", "chatml")
    assert model.num_parameters and model.architecture
    assert not demo_model_marker(settings).exists()

    assert setup_demo_model(settings, database) is None  # done: nothing more on later starts
    bootstrap(settings, database, env={})
    assert not demo_model_marker(settings).exists()
    with database.session() as session:
        assert counts(session)["RegisteredModel"] == 1


def test_a_missing_demo_package_only_warns(
    backend: tuple[Settings, Database], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings, database = backend
    monkeypatch.setattr(demo_model, "GGUF_PACKAGE", "tunery_no_such_demo_package")
    result = bootstrap(settings, database, env={})
    assert result.created and len(result.datasets) == 2
    with caplog.at_level(logging.WARNING):
        assert start_in_background(settings, {}) is None
        assert setup_demo_model(settings, database) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("demo model SmolLM2-135M-Instruct is not registered" in w for w in warnings)
    assert "pip install" in warnings[0]
    assert demo_model_marker(settings).exists()  # installing the package and restarting still registers it
    with database.session() as session:
        assert counts(session)["RegisteredModel"] == 0
