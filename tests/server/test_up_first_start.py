"""`tunery up` on a fresh TUNERY_HOME: it prints the URL and, once, the generated admin password; the admin
logs in and finds the Default project with the demo datasets and the demo model; a restart adds nothing.

The demo model folder is put in place before the start (as a finished conversion leaves it), so the background
step only registers it; the conversion itself takes about a minute of CPU.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx

from tests.server.test_up import Up
from tests.server.worker_support import ROOT, free_port, wait_for


def get(url: str, token: str, path: str) -> Any:
    response = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def catalog(url: str, token: str) -> tuple[list[str], list[tuple[str, int | None]], list[str]]:
    projects = get(url, token, "/api/projects")
    (project,) = [p for p in projects if p["name"] == "Default"]
    datasets = get(url, token, f"/api/projects/{project['id']}/datasets")
    models = get(url, token, f"/api/projects/{project['id']}/models")
    return (
        [p["name"] for p in projects],
        [(d["name"], d["latest_version"]) for d in datasets],
        [m["name"] for m in models],
    )


def test_first_start_prints_the_admin_login_once_and_sets_up_the_demo(tmp_path: Path, tiny_llama: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNERY_")}  # the embedded default, demo on
    env.update(TUNERY_HOME=str(home), TUNERY_WORKER_POLL_SECONDS="0.5", PYTHONPATH=str(ROOT))
    shutil.copytree(tiny_llama, home / "models" / "SmolLM2-135M-Instruct")
    up = Up(env, free_port(), tmp_path / "up.log")
    try:
        found = re.search(r"Admin login: admin@tunery\.local  password: (\S+)", up.output())
        assert found, up.output()
        password = found.group(1)
        assert (home / "initial_admin_password").read_text().strip() == password
        login = httpx.post(
            f"{up.url}/api/auth/login", json={"email": "admin@tunery.local", "password": password}, timeout=30
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        assert get(up.url, token, "/api/auth/me")["is_admin"] is True

        def demo_ready() -> tuple[list[str], list[tuple[str, int | None]], list[str]] | None:
            listed = catalog(up.url, token)
            return listed if listed[2] else None

        first = wait_for(demo_ready, 120, "the demo model to be registered")
        assert first == (["Default"], [("tunery_identity", 1), ("tunery_identity_dpo", 1)], ["SmolLM2-135M-Instruct"])
    finally:
        up.stop()
    assert up.output().count(password) == 1, "the password is printed once and never logged"
    assert not (home / "demo_model.pending").exists()

    again = Up(env, free_port(), tmp_path / "up-again.log")
    try:
        assert password not in again.output()
        assert f"first-start password in {home / 'initial_admin_password'}" in again.output()
        assert catalog(again.url, token) == first
    finally:
        again.stop()
