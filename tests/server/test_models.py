"""Base models: register hub ids and local folders (config.json, safetensors headers, template guess); CLI."""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import Factory, ProjectHandle, UserHandle, bearer
from tunery.server.cli import register
from tunery.server.config import Settings
from tunery.server.db.models import Role

LLAMA3_TEMPLATE = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{{ m.content }}{% endfor %}"


def write_model(folder: Path, shapes: dict[str, list[int]], chat_template: str | None = LLAMA3_TEMPLATE) -> Path:
    """A model folder as transformers saves it, with tensors that are all zeros."""
    folder.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1}
    (folder / "config.json").write_text(json.dumps(config))
    if chat_template is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": chat_template}))
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"\0" * offset)
    return folder


@pytest.fixture
def models_url(project: ProjectHandle) -> str:
    return f"/api/projects/{project.id}/models"


def test_register_a_hub_id(client: TestClient, owner: UserHandle, models_url: str) -> None:
    answer = client.post(
        models_url,
        json={"name": "qwen", "path_or_hub_id": "Qwen/Qwen2.5-0.5B", "template": "qwen"},
        headers=owner.headers,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["template"], body["architecture"], body["details"]["source"]) == ("qwen", None, "hub")
    again = client.post(models_url, json={"name": "qwen", "path_or_hub_id": "x/y"}, headers=owner.headers)
    assert again.status_code == 409
    assert [m["name"] for m in client.get(models_url, headers=owner.headers).json()] == ["qwen"]


def test_register_a_local_folder_reads_its_facts(
    client: TestClient, owner: UserHandle, models_url: str, settings: Settings
) -> None:
    folder = write_model(settings.model_dirs[0] / "tiny", {"embed": [10, 8], "layer.weight": [8, 8]})
    answer = client.post(models_url, json={"name": "tiny", "path_or_hub_id": str(folder)}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["architecture"] == "LlamaForCausalLM"
    assert body["num_parameters"] == 10 * 8 + 8 * 8
    assert body["template"] == "llama3"
    assert body["details"]["model_type"] == "llama"


def test_local_folders_outside_the_model_dirs_are_refused(
    client: TestClient, owner: UserHandle, models_url: str, tmp_path: Path
) -> None:
    folder = write_model(tmp_path / "elsewhere", {"w": [2, 2]})
    answer = client.post(models_url, json={"name": "x", "path_or_hub_id": str(folder)}, headers=owner.headers)
    assert answer.status_code == 422
    probe = client.post(models_url, json={"name": "y", "path_or_hub_id": "/etc"}, headers=owner.headers)
    assert probe.status_code == 422
    assert probe.json()["detail"] == answer.json()["detail"]  # no hint whether the path exists


def test_viewers_list_but_cannot_register(
    client: TestClient, factory: Factory, project: ProjectHandle, models_url: str
) -> None:
    viewer = factory.user()
    factory.member(project, viewer, Role.VIEWER)
    body = {"name": "m", "path_or_hub_id": "org/m"}
    assert client.post(models_url, json=body, headers=viewer.headers).status_code == 403
    assert client.get(models_url, headers=viewer.headers).status_code == 200


def _cli(
    argv: list[str], settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setenv("TUNERY_HOME", str(settings.home))
    monkeypatch.setenv("TUNERY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TUNERY_SECRET_KEY", settings.secret_key.get_secret_value())
    parser = argparse.ArgumentParser(prog="tunery")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.handler(args, sys.stdout)
    return code, capsys.readouterr().out


def test_cli_models_add_registers_a_shared_model_every_project_sees(
    client: TestClient,
    owner: UserHandle,
    models_url: str,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = write_model(tmp_path / "anywhere" / "m", {"w": [4, 4]}, chat_template=None)
    code, out = _cli(["models", "add", "shared-tiny", str(folder)], settings, monkeypatch, capsys)
    assert code == 0
    assert "LlamaForCausalLM" in out and "16 parameters" in out and "template llama3" in out
    listed = client.get(models_url, headers=owner.headers).json()
    assert [(m["name"], m["project_id"]) for m in listed] == [("shared-tiny", None)]
    # shared models are read-only to non-admins
    shared = f"/api/models/{listed[0]['id']}"
    assert client.delete(shared, headers=owner.headers).status_code == 403
    code, _ = _cli(["models", "add", "hub", "org/model", "--project", "nope"], settings, monkeypatch, capsys)
    assert code == 2


def test_cli_creates_users_and_keys(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(
        ["admin", "create-user", "root@example.com", "--password", "long enough pw", "--admin"],
        settings,
        monkeypatch,
        capsys,
    )
    assert code == 0 and "admin root@example.com" in out
    login = client.post("/api/auth/login", json={"email": "root@example.com", "password": "long enough pw"})
    assert login.status_code == 200
    code, out = _cli(
        ["admin", "create-key", "root@example.com", "--scopes", "read", "--expires-days", "3"],
        settings,
        monkeypatch,
        capsys,
    )
    key = out.strip()
    assert code == 0 and key.startswith("tny_")
    assert client.get("/api/auth/me", headers=bearer(key)).json()["is_admin"] is True
    assert client.post("/api/projects", json={"name": "x"}, headers=bearer(key)).status_code == 403
    code, _ = _cli(
        ["admin", "create-user", "root@example.com", "--password", "long enough pw"], settings, monkeypatch, capsys
    )
    assert code == 2
    code, _ = _cli(["admin", "create-user", "weak@example.com", "--password", "short"], settings, monkeypatch, capsys)
    assert code == 2
