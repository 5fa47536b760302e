"""Preview worker, run as ``python -m tunery.server.preview_runner`` (it imports torch; the API never does).

Reads ``{"spec": {...nested JobSpec...}, "n": 3}`` on stdin; writes one JSON object on stdout:
``{"examples": [...], "stats": {...}}`` (``tunery.engine.tokenize.preview.preview_data``, files relative to
the dataset folder) or ``{"error": "..."}`` (exit code 2).
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: examples read for the statistics (the first ones of the dataset)
STATS_SAMPLE = 10_000


def _short(path: str, raw_spec: dict[str, Any]) -> str:
    """A data file relative to the dataset folder (no server path in answers)."""
    import os

    folder = os.path.normpath(str(raw_spec.get("data", {}).get("dataset_dir", "")))
    real = os.path.normpath(os.path.join(folder, path))
    return os.path.relpath(real, folder) if real.startswith(folder + os.sep) else os.path.basename(path)


def build_preview(raw_spec: dict[str, Any], n: int) -> dict[str, Any]:
    from tunery.engine.tokenize.preview import preview_data
    from tunery.engine.train.data import load_template
    from tunery.engine.train.model import load_tokenizer
    from tunery.spec import JobSpec

    spec = JobSpec.from_mapping(raw_spec)
    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    result = preview_data(spec, n, tokenizer, template, sample=STATS_SAMPLE)
    for example in result["examples"]:
        if example["file"] is not None:
            example["file"] = _short(example["file"], raw_spec)
    return result


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        result = build_preview(request["spec"], int(request.get("n", 3)))
    except Exception as exc:  # reported to the API caller as a 422 with this message
        sys.stdout.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
