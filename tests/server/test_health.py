"""Liveness and readiness: database reachable, migrations at head, broker reachable."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tunery.server.api.app import create_app
from tunery.server.config import Settings


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}
    ready = client.get("/api/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}


def test_not_ready_without_migrations_or_broker(settings: Settings, tmp_path: Path) -> None:
    unmigrated = settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'empty.db'}",
            "broker_url": "redis://127.0.0.1:1/0",  # nothing listens there
            "migrate_on_start": False,
        }
    )
    with TestClient(create_app(unmigrated)) as client:
        ready = client.get("/api/ready")
        assert client.get("/api/health").status_code == 200
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"].startswith("database at revision None")
    assert checks["broker"].startswith("broker unreachable")


def test_app_start_migrates_an_empty_database(settings: Settings, tmp_path: Path) -> None:
    fresh = settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'fresh.db'}", "broker_url": "memory://"}
    )
    with TestClient(create_app(fresh)) as client:
        assert client.get("/api/ready").json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}
        assert client.post("/api/auth/login", json={"email": "a@b.c", "password": "whatever1"}).status_code == 401


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/auth/login", "/api/projects", "/api/datasets/{dataset_id}/versions", "/api/ready"):
        assert path in paths
    upload = paths["/api/datasets/{dataset_id}/versions"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]


def test_the_api_process_never_imports_torch() -> None:
    """The app, its routers, in-process data validation and the benchmark catalog stay torch-free (previews run
    in a subprocess)."""
    code = (
        "import sys, tempfile\n"
        "from tunery.server.api.app import create_app\n"
        "from tunery.server.config import Settings\n"
        "from tunery.engine.data.load import validate_datasets\n"
        "settings = Settings.from_env({'TUNERY_HOME': tempfile.mkdtemp()})\n"
        "create_app(settings).openapi()\n"
        "from tunery.server.services.eval_catalog import list_benchmarks\n"
        "assert list_benchmarks(settings)\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_start_up_objects_are_frozen_out_of_the_cycle_collector(settings: Settings) -> None:
    """The app's start (its lifespan) freezes the long-lived objects out of the cycle collector's way."""
    gc.unfreeze()  # whatever an earlier app in this process froze
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health").status_code == 200
        assert gc.get_freeze_count() > 10_000
