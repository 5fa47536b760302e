"""Prepare a Tunery home for the end-to-end test: a user, and a tiny local model the UI registers.

Usage: TUNERY_HOME=... python frontend/e2e/backend_setup.py EMAIL PASSWORD
Writes a tiny llama model (locally trained tokenizer; no download) to $TUNERY_HOME/models/tiny-llama and
prints its path. The user is created with ``tunery admin create-user`` unless it exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    email, password = sys.argv[1], sys.argv[2]
    home = Path(os.environ["TUNERY_HOME"]).resolve()
    sys.path.insert(0, str(REPO))
    from tests.support.tiny_models import build_model

    target = home / "models" / "tiny-llama"
    if not (target / "config.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        build_model(target, family="llama", layers=2)
    done = subprocess.run(
        [sys.executable, "-m", "tunery.cli.main", "admin", "create-user", email, "--password", password],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 and "exists" not in (done.stdout + done.stderr):
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(done.returncode)
    print(target)


if __name__ == "__main__":
    main()
