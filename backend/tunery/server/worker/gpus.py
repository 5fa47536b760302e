"""GPU discovery without torch: ``nvidia-smi`` when present, else none (a CPU worker)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

QUERY = ["--query-gpu=index,name,memory.total", "--format=csv,noheader"]


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_mb: int


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Rows like ``0, NVIDIA H100 80GB HBM3, 81559`` (a ``MiB`` unit is accepted too)."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        index, _, rest = line.partition(",")
        name, _, memory = rest.rpartition(",")
        if not name.strip() or not index.strip().isdigit():
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        megabytes = memory.strip().removesuffix("MiB").strip()
        gpus.append(GpuInfo(int(index), name.strip(), int(megabytes) if megabytes.isdigit() else 0))
    return gpus


def discover_gpus(executable: str = "nvidia-smi", timeout: float = 30.0) -> list[GpuInfo]:
    """The machine's GPUs; an empty list when nvidia-smi is missing or fails (logged)."""
    path = shutil.which(executable)
    if path is None:
        return []
    try:
        done = subprocess.run([path, *QUERY], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi failed (%s); running as a CPU worker", exc)
        return []
    if done.returncode != 0:
        log.warning("nvidia-smi exited %s: %s; running as a CPU worker", done.returncode, done.stderr.strip())
        return []
    try:
        return parse_nvidia_smi(done.stdout)
    except ValueError as exc:
        log.warning("%s; running as a CPU worker", exc)
        return []


def select_gpus(gpus: list[GpuInfo], visible: str | None) -> list[GpuInfo]:
    """Only the GPUs listed in CUDA_VISIBLE_DEVICES (indices), when the worker itself was given that."""
    if visible is None or not visible.strip():
        return gpus if visible is None else []
    wanted = {item.strip() for item in visible.split(",")}
    return [gpu for gpu in gpus if str(gpu.index) in wanted]
