"""Dataset previews rendered in a subprocess (``tunery.server.preview_runner``), so the API never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tunery.server.db.models import DatasetVersion, RegisteredModel
from tunery.server.errors import InvalidError, ServiceError


class PreviewTimeout(ServiceError):
    status_code = 504


class PreviewFailed(ServiceError):
    status_code = 500


def preview_spec(
    storage_root: Path,
    version: DatasetVersion,
    dataset_name: str,
    model: RegisteredModel,
    template: str | None,
    cutoff_len: int,
) -> dict[str, Any]:
    """The (nested) job spec a preview of this version with this model runs."""
    data: dict[str, Any] = {
        "dataset": [dataset_name],
        "dataset_dir": str(storage_root / version.storage_path),
        "cutoff_len": cutoff_len,
    }
    if template or model.template:
        data["template"] = template or model.template
    return {
        "model": {"model_name_or_path": model.path_or_hub_id},
        "data": data,
        "method": {"stage": version.stage},
    }


def run_preview(spec: dict[str, Any], n: int, timeout: float) -> dict[str, Any]:
    """Run the preview subprocess; InvalidError with its message when the data or model cannot be used."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tunery.server.preview_runner"],
            input=json.dumps({"spec": spec, "n": n}),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PreviewTimeout(f"the preview took longer than {timeout:.0f} s") from exc
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise PreviewFailed(f"the preview failed (exit {done.returncode}): {tail[0]}")
    if "error" in result:
        raise InvalidError(str(result["error"]).replace(spec["data"]["dataset_dir"] + os.sep, ""))
    return result
