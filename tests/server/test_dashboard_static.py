"""The built dashboard served by the API: files, SPA fallback, API paths left alone, no escape from dist."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tunery.server.api.app import create_app
from tunery.server.api.static import _inside, mount_dashboard
from tunery.server.config import Settings


def _app(dist: Path) -> TestClient:
    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    mount_dashboard(app, dist)
    return TestClient(app)


def _dist(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=root></div>", encoding="utf-8")
    (dist / "assets" / "index-abc.js").write_text("console.log(1)", encoding="utf-8")
    (dist / "favicon.svg").write_text("<svg/>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("top secret", encoding="utf-8")
    return dist


def test_serves_files_and_falls_back_to_index_for_dashboard_paths(tmp_path: Path) -> None:
    client = _app(_dist(tmp_path))
    index = client.get("/")
    assert index.status_code == 200 and "id=root" in index.text
    assert index.headers["cache-control"] == "no-cache"
    asset = client.get("/assets/index-abc.js")
    assert asset.text == "console.log(1)" and "immutable" in asset.headers["cache-control"]
    assert client.get("/favicon.svg").text == "<svg/>"
    deep = client.get("/runs/0123/anything")
    assert deep.status_code == 200 and "id=root" in deep.text
    assert deep.headers["content-type"].startswith("text/html")


def test_api_paths_are_not_the_dashboard(tmp_path: Path) -> None:
    client = _app(_dist(tmp_path))
    assert client.get("/api/health").json() == {"status": "ok"}
    for path in ("/api/nothing-here", "/v1/models", "/api"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json() == {"detail": "Not Found"}, path


def test_paths_outside_dist_are_not_served(tmp_path: Path) -> None:
    client = _app(_dist(tmp_path))
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        answer = client.get(path)
        assert "top secret" not in answer.text, path
    dist = (tmp_path / "dist").resolve()
    assert _inside(dist, "../secret.txt") is None
    assert _inside(dist, "assets/../../secret.txt") is None
    assert _inside(dist, str(tmp_path / "secret.txt")) is None  # an absolute path replaces the root
    assert _inside(dist, "assets") is None  # a folder
    assert _inside(dist, "favicon.svg") == dist / "favicon.svg"


def test_not_built_says_how_to_build(tmp_path: Path) -> None:
    client = _app(tmp_path / "missing")
    answer = client.get("/")
    assert answer.status_code == 404 and "npm run build" in answer.text
    assert client.get("/api/health").status_code == 200


def test_the_service_app_serves_the_configured_dashboard(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings.model_copy(update={"dashboard_dir": _dist(tmp_path)}))
    with TestClient(app) as client:
        assert "id=root" in client.get("/runs/anything").text
        assert client.get("/api/health").json() == {"status": "ok"}
        assert client.get("/api/jobs").status_code == 401  # API routes come first
        assert client.get("/api/no-such-thing").json() == {"detail": "Not Found"}
        assert client.get("/openapi.json").json()["info"]["title"] == "Tunery"
