"""Write the API's OpenAPI document (and the chat template names) for the dashboard's generated client.

Usage: python frontend/scripts/export_openapi.py [--out DIR]   (default DIR: frontend/)
Writes DIR/openapi.json from ``create_app(...).openapi()`` and DIR/src/api/catalog.gen.json: the engine's
chat template names, the built-in GRPO reward functions and the spec rules the form checks before
submitting (key aliases, unsupported options). The stages come from GET /api/stages.
A throwaway TUNERY_HOME is used, so nothing is written elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

FRONTEND = Path(__file__).resolve().parent.parent


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def export(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tunery-openapi-") as home:
        os.environ["TUNERY_HOME"] = home
        os.environ.setdefault("TUNERY_SECRET_KEY", "openapi-export-only")
        from tunery.engine.templates.registry import list_templates
        from tunery.server.api.app import create_app
        from tunery.server.config import Settings
        from tunery.spec import job, rules
        from tunery.spec.rewards import REWARD_CATALOG

        document = create_app(Settings.from_env()).openapi()
        catalog = {
            "templates": list_templates(),
            "reward_functions": [
                {"name": r.name, "summary": r.summary, "args": list(r.args), "required": list(r.required)}
                for r in REWARD_CATALOG
            ],
            "aliases": job.ALIASES,
            "unsupported_options": {
                **rules.UNSUPPORTED_MODEL_OPTIONS,
                **rules.UNSUPPORTED_METHOD_OPTIONS,
                **rules.UNSUPPORTED_TRAINING_OPTIONS,
            },
        }
    (out / "openapi.json").write_text(_dump(document), encoding="utf-8")
    target = out / "src" / "api" / "catalog.gen.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_dump(catalog), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FRONTEND, help="folder to write into (default: frontend/)")
    args = parser.parse_args()
    export(args.out.resolve())


if __name__ == "__main__":
    main()
