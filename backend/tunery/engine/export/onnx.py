"""ONNX export with optimum-onnx: ``onnx/`` (model.onnx with past key values, config, tokenizer) for onnxruntime.

optimum-onnx needs an older transformers than the engine, so it runs in its own virtual environment
(``.venv-onnx``, made by ``deploy/setup_onnx.sh`` / ``make install``): ``onnx_export_script.py`` runs there as a
child process, exports into a ``.tmp-onnx-*`` folder and, with ``export_verify``, greedy-decodes the verification
prompts in onnxruntime; the folder becomes ``onnx/`` only when all of that succeeded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import IO

from tunery.engine.export.types import (
    VERIFY_TOKENS,
    ExportContext,
    WrittenArtifact,
    greedy_match,
    stop_child,
)
from tunery.engine.train.errors import TrainingError
from tunery.spec import JobSpec

SCRIPT = Path(__file__).with_name("onnx_export_script.py")
#: the python of .venv-onnx; overrides the repository's own
ONNX_PYTHON_ENV = "TUNERY_ONNX_PYTHON"
ONNX_DIR = "onnx"
TASK = "text-generation-with-past"
#: lines of the script's output that are progress for the user (the same prefix as onnx_export_script.py)
PROGRESS_PREFIX = "tunery-onnx: "
_POLL_SECONDS = 0.2


def default_onnx_python() -> str:
    """``$TUNERY_ONNX_PYTHON``, else ``.venv-onnx/bin/python`` of the repository (as ``make install`` builds it)."""
    configured = os.environ.get(ONNX_PYTHON_ENV)
    if configured:
        return configured
    root = Path(__file__).resolve().parents[4]
    return str(root / ".venv-onnx" / "bin" / "python")


def onnx_python() -> str:
    """The exporter's python; a clear error naming the way to install it when it is missing."""
    python = default_onnx_python()
    if not os.access(python, os.X_OK):
        raise TrainingError(
            "internal",
            f"ONNX export needs optimum-onnx in its own virtual environment, but {python} does not exist: run "
            f"`make install` (or `bash deploy/setup_onnx.sh`), or set {ONNX_PYTHON_ENV} to a python that has "
            "optimum-onnx[onnxruntime]",
        )
    return python


def preflight(spec: JobSpec) -> None:
    """Before any work: the exporter's environment is there."""
    onnx_python()


def write_onnx(ctx: ExportContext) -> list[WrittenArtifact]:
    """Export the merged model to ``onnx/``; nothing is written when a cancel arrives first."""
    python = onnx_python()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=".tmp-onnx-", dir=ctx.export_dir))
    try:
        prompts = ctx.verify_prompts if ctx.spec.export.export_verify else []
        reference = ctx.verify_reference or [[] for _ in prompts]
        request = {
            "merged_dir": str(ctx.merged_dir.resolve()),
            "work_dir": str(work),
            "task": TASK,
            "verify_prompts": prompts,
            "verify_counts": [len(ref) or VERIFY_TOKENS for ref in reference],
        }
        (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
        ctx.log("ONNX: starting optimum-onnx")
        command = [python, "-I", str(SCRIPT), str(work / "request.json")]  # -I: no script folder on sys.path
        if not _run(ctx, command, work / "output.log") or ctx.cancel.requested:
            return []
        result = json.loads((work / "result.json").read_text(encoding="utf-8"))
        checks: dict[str, float] = {}
        if ctx.verify_reference and prompts:
            checks["greedy_match"] = greedy_match(ctx.verify_reference, result["produced"])
        final = ctx.export_dir / ONNX_DIR
        if final.exists():  # an earlier export's files are replaced as a whole
            shutil.rmtree(final)
        (work / ONNX_DIR).rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = sum(path.stat().st_size for path in final.rglob("*") if path.is_file())
    figures = "".join(f", {key} {value:.4g}" for key, value in checks.items())
    ctx.log(f"ONNX: wrote {ONNX_DIR}/ ({size / 1e6:.1f} MB, {time.monotonic() - started:.1f} s{figures})")
    return [WrittenArtifact(name="onnx", format="onnx", path=ONNX_DIR, size_bytes=size, checks=checks)]


def _run(ctx: ExportContext, command: list[str], log_path: Path) -> bool:
    """Run the export script, passing its progress lines to ``ctx.log``; False when a cancel stopped it, an error
    with the script's last lines when it failed."""
    with log_path.open("wb") as output, log_path.open("rb") as reading:  # two handles: reading never moves writing
        # everything is local: no hub look-up may wait on a network that is not there
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env)
        reader = _LineReader(reading)
        while process.poll() is None:
            if ctx.cancel.requested:
                stop_child(process)
                return False
            reader.forward(ctx)
            time.sleep(_POLL_SECONDS)
        reader.forward(ctx, final=True)
    if process.returncode == 0:
        return True
    details = "\n".join(reader.tail)
    raise TrainingError("internal", f"ONNX export failed (optimum-onnx, exit {process.returncode}):\n{details}")


class _LineReader:
    """Follows the child's output as it grows: progress lines go to the log, the last other lines are kept."""

    def __init__(self, reading: IO[bytes]) -> None:
        self.reading = reading
        self.pending = b""
        self.tail: deque[str] = deque(maxlen=25)

    def forward(self, ctx: ExportContext, final: bool = False) -> None:
        *lines, self.pending = (self.pending + self.reading.read()).split(b"\n")
        if final:
            lines.append(self.pending)
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line.startswith(PROGRESS_PREFIX):
                ctx.log("ONNX: " + line.removeprefix(PROGRESS_PREFIX))
            elif line.strip():
                self.tail.append(line)
