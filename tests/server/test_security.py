"""Security: project isolation (404, never 403, for other projects), safe upload paths, size limits, no secrets
in logs or reprs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import Factory, ProjectHandle, UserHandle, bearer
from tests.server.uploads_support import ALPACA_ROWS, CONTENT_TYPE, multipart, rows, tree
from tunery.server.config import Settings
from tunery.server.storage import UnsafePathError, safe_join


def _content(client: TestClient, project: ProjectHandle) -> dict[str, str]:
    """A dataset with a version, an experiment and a model in ``project``; their item URLs."""
    headers, url = project.owner.headers, f"/api/projects/{project.id}"
    dataset = client.post(f"{url}/datasets", json={"name": "secret-data"}, headers=headers).json()
    body = multipart({"train.json": rows(ALPACA_ROWS)})
    version = client.post(
        f"/api/datasets/{dataset['id']}/versions", content=body, headers={**headers, "Content-Type": CONTENT_TYPE}
    )
    assert version.status_code == 201, version.text
    experiment = client.post(f"{url}/experiments", json={"name": "e"}, headers=headers).json()
    model = client.post(f"{url}/models", json={"name": "m", "path_or_hub_id": "org/model"}, headers=headers).json()
    return {
        "project": url,
        "dataset": f"/api/datasets/{dataset['id']}",
        "version": f"/api/datasets/{dataset['id']}/versions/1",
        "report": f"/api/datasets/{dataset['id']}/versions/1/report",
        "experiment": f"/api/experiments/{experiment['id']}",
        "model": f"/api/models/{model['id']}",
    }


def test_outsiders_see_nothing_of_other_projects(client: TestClient, factory: Factory, project: ProjectHandle) -> None:
    urls = _content(client, project)
    outsider = factory.user()
    factory.project(outsider)  # they have a project of their own
    for name, url in urls.items():
        assert client.get(url, headers=outsider.headers).status_code == 404, name
        if name != "report":
            assert client.delete(url, headers=outsider.headers).status_code == 404, name
    for listing in ("datasets", "experiments", "models", "members"):
        assert client.get(f"{urls['project']}/{listing}", headers=outsider.headers).status_code == 404, listing
    creates = {"datasets": {"name": "x"}, "experiments": {"name": "x"}, "members": {"email": outsider.email}}
    for listing, body in creates.items():
        answer = client.post(f"{urls['project']}/{listing}", json=body, headers=outsider.headers)
        assert answer.status_code == 404, listing
    assert client.get(f"/api/projects/{project.slug}", headers=outsider.headers).status_code == 404
    assert project.id not in {item["id"] for item in client.get("/api/projects", headers=outsider.headers).json()}
    upload = client.post(
        f"{urls['dataset']}/versions",
        content=multipart({"x.json": rows(ALPACA_ROWS)}),
        headers={**outsider.headers, "Content-Type": CONTENT_TYPE},
    )
    assert upload.status_code == 404
    # and the owner still sees everything
    for name, url in urls.items():
        assert client.get(url, headers=project.owner.headers).status_code == 200, name


@pytest.mark.parametrize(
    "name",
    ["../evil.json", "../../evil.json", "/tmp/evil.json", "a/../../evil.json", "..", "a\\..\\evil.json", "C:evil"],
)
def test_upload_file_names_that_escape_are_refused_and_nothing_is_written(
    client: TestClient, project: ProjectHandle, settings: Settings, name: str
) -> None:
    owner = project.owner
    dataset = client.post(f"/api/projects/{project.id}/datasets", json={"name": "d"}, headers=owner.headers).json()
    around = settings.storage_root.parent.parent  # the test's tmp folder and its siblings
    before, inside = tree(around), tree(settings.storage_root)
    answer = client.post(
        f"/api/datasets/{dataset['id']}/versions",
        content=multipart({"ok.json": rows(ALPACA_ROWS), name: rows(ALPACA_ROWS)}),
        headers={**owner.headers, "Content-Type": CONTENT_TYPE},
    )
    assert answer.status_code == 422, answer.text
    assert "file name refused" in answer.json()["detail"]
    assert tree(settings.storage_root) == inside
    assert tree(around) == before
    assert not Path("/tmp/evil.json").exists()


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 1024 * 1024 + 10])
def test_uploads_over_the_limit_get_413_and_write_nothing(
    client: TestClient, project: ProjectHandle, settings: Settings, size: int
) -> None:
    """Refused from Content-Length alone (2 MiB) or while streaming (just over the 1 MiB limit)."""
    owner = project.owner
    dataset = client.post(f"/api/projects/{project.id}/datasets", json={"name": "d"}, headers=owner.headers).json()
    before = tree(settings.storage_root.parent)
    answer = client.post(
        f"/api/datasets/{dataset['id']}/versions",
        content=multipart({"big.jsonl": b"x" * size}),
        headers={**owner.headers, "Content-Type": CONTENT_TYPE},
    )
    assert answer.status_code == 413
    assert tree(settings.storage_root.parent) == before
    versions = client.get(f"/api/datasets/{dataset['id']}/versions", headers=owner.headers).json()
    assert versions == []


def test_safe_join_refuses_escapes_including_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert safe_join(root, "a/b.json") == root / "a" / "b.json"
    for bad in ("../x", "/etc/passwd", "a//b", "./a", "a/./b", "", "a\x00b", "link/x"):
        with pytest.raises(UnsafePathError):
            safe_join(root, bad)


def test_viewer_cannot_upload(client: TestClient, factory: Factory, project: ProjectHandle) -> None:
    viewer = factory.user()
    from tunery.server.db.models import Role

    factory.member(project, viewer, Role.VIEWER)
    owner = project.owner
    dataset = client.post(f"/api/projects/{project.id}/datasets", json={"name": "d"}, headers=owner.headers).json()
    answer = client.post(
        f"/api/datasets/{dataset['id']}/versions",
        content=multipart({"x.json": rows(ALPACA_ROWS)}),
        headers={**viewer.headers, "Content-Type": CONTENT_TYPE},
    )
    assert answer.status_code == 403
    assert client.get(f"/api/datasets/{dataset['id']}", headers=viewer.headers).status_code == 200


def test_secrets_never_reach_the_logs(client: TestClient, factory: Factory, caplog: pytest.LogCaptureFixture) -> None:
    """Every log record (SQL statements with their parameters included) during login and key use."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    user = factory.user(password="a very secret password 42")
    login = client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    token = login.json()["access_token"]
    created = client.post("/api/keys", json={"name": "k"}, headers=bearer(token))
    key = created.json()["key"]
    assert client.get("/api/auth/me", headers=bearer(key)).status_code == 200
    bad = client.post("/api/auth/login", json={"email": user.email, "password": "wrong secret password 43"})
    assert bad.status_code == 401
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert user.email in logged  # the SQL and its parameters were captured: the check below can fail
    secret_part = key.removeprefix("tny_").split("_", 1)[1]  # the secret itself may contain "_"
    for secret in (user.password, "wrong secret password 43", token, key, secret_part):
        assert secret not in logged


def test_settings_repr_hides_secrets(settings: Settings) -> None:
    env = {
        "TUNERY_HOME": str(settings.home),
        "TUNERY_DATABASE_URL": "postgresql+psycopg://tunery:db-password-1@db/tunery",
        "TUNERY_BROKER_URL": "redis://:broker-password-2@redis:6379/0",
        "TUNERY_SECRET_KEY": "signing-secret-3",
    }
    shown = repr(Settings.from_env(env)) + str(Settings.from_env(env))
    for secret in ("db-password-1", "broker-password-2", "signing-secret-3"):
        assert secret not in shown


def test_generated_secret_key_is_kept_private(tmp_path: Path) -> None:
    first = Settings.from_env({"TUNERY_HOME": str(tmp_path)})
    second = Settings.from_env({"TUNERY_HOME": str(tmp_path)})
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    assert len(first.secret_key.get_secret_value()) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_owner_sees_own_user_only(client: TestClient, owner: UserHandle) -> None:
    assert client.get("/api/auth/me", headers=owner.headers).json()["id"] == owner.id


def test_server_logs_redact_credentials_in_paths(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn logs websocket paths with their query string; credentials in them are masked."""
    caplog.set_level(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # an earlier in-process uvicorn may have set them
        caplog.set_level(logging.INFO, logger=name)
    token, key = "tnl_eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "tny_0a1b2c3d4e5f_S3cr3t-Value_x"
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/api/jobs/j/stream?token={token}")
    uvicorn_error.info('%s - "WebSocket %s" 403', "127.0.0.1:5000", f"/api/jobs/j/stream?after=3&token={key}")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/x?access_token=plain-secret", "1.1", 200
    )
    text = caplog.text
    assert "/api/jobs/j/stream?token=[redacted]" in text
    assert "after=3&token=[redacted]" in text
    for secret in (token, key, "S3cr3t-Value", "plain-secret"):
        assert secret not in text
