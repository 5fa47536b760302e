"""Render Modelfiles the way Ollama does, with Go's text/template (tests/export/ollama_render, a Go program).

``make test`` installs Go (golang-go, in deploy/services.sh); in CI (``CI`` set) a missing Go fails the tests,
elsewhere it skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "export" / "ollama_render"


@dataclass
class OllamaRender:
    """One Modelfile as Ollama reads it: its commands, the prompt rendered for a chat, or the error."""

    commands: list[tuple[str, str]]
    prompt: str
    error: str

    def args(self, name: str) -> list[str]:
        return [args for command, args in self.commands if command == name]


class OllamaRenderer:
    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, cases: list[tuple[Path, list[dict[str, str]] | None]]) -> list[OllamaRender]:
        """Parse each Modelfile and, when messages are given, render its TEMPLATE for them (one Go process)."""
        payload = {"cases": [{"modelfile": str(path), "messages": messages} for path, messages in cases]}
        done = subprocess.run(
            [str(self.binary)], input=json.dumps(payload), capture_output=True, text=True, check=True, timeout=120
        )
        return [
            OllamaRender([(c["name"], c["args"]) for c in r["commands"] or []], r["prompt"], r["error"])
            for r in json.loads(done.stdout)
        ]

    def render(self, modelfile: Path, messages: list[dict[str, str]] | None = None) -> OllamaRender:
        return self.run([(modelfile, messages)])[0]


def build_renderer(folder: Path) -> OllamaRenderer:
    """Build the Go program into ``folder``; fail in CI and skip elsewhere when Go is not installed."""
    go = shutil.which("go")
    if go is None:
        message = "Go is not installed (apt-get install golang-go; `make test` does it via deploy/services.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env: dict[str, Any] = dict(os.environ)
    if "HOME" not in env and "GOCACHE" not in env:
        env["GOCACHE"] = str(folder / "gocache")
    env["GOTOOLCHAIN"] = "local"  # never download another Go
    binary = folder / "ollama_render"
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=SOURCE, env=env, capture_output=True, text=True, timeout=600
    )
    if built.returncode:
        pytest.fail(f"building {SOURCE} failed:\n{built.stderr}")
    return OllamaRenderer(binary)
