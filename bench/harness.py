"""Pieces of the benchmark: paths, the shared job files, the two sides' commands, measured subprocesses."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
OUT = BENCH / "out"
LF_PY = BENCH / ".venv-lf" / "bin" / "python"
LF_CLI = BENCH / ".venv-lf" / "bin" / "llamafactory-cli"
TUNERY_PY = ROOT / ".venv" / "bin" / "python"
TUNERY_CLI = ROOT / ".venv" / "bin" / "tunery"
SIDES = ("lf", "tunery")
NAMES = {"lf": "LLaMA-Factory 0.9.5", "tunery": "Tunery"}
DATASETS = ["alpaca_en_demo", "identity", "glaive_toolcall_en_demo"]
JOBS = ("prep", "train", "train_packed")
PACKAGES = ["llamafactory", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "tokenizers"]
MARKER = "BENCH_RESULT "


def tiny_models() -> Any:
    """tests/support/tiny_models.py: the tiny model builder shared with the tests."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.support.tiny_models")


SHARED_DATA: Path = tiny_models().SHARED_DATA


# ---------------------------------------------------------------- model, jobs, data


def ensure_model(folder: Path) -> Path:
    if not (folder / "config.json").exists():
        tiny_models().build_model(folder, "llama")
    return folder


def base_job(model_dir: Path) -> dict[str, Any]:
    """The flat LLaMA-Factory-style job both sides read (output_dir is set per run on the command line)."""
    return {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_target": "all",
        "dataset": ",".join(DATASETS),
        "dataset_dir": str(SHARED_DATA),
        "template": "llama3",
        "cutoff_len": 512,
        "overwrite_cache": True,
        "preprocessing_num_workers": None,
        "output_dir": str(OUT / "runs" / "unset"),
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1.0e-4,
        "num_train_epochs": 1.0,
        "lr_scheduler_type": "cosine",
        "logging_steps": 10,
        "save_strategy": "no",
        "report_to": "none",
        "bf16": False,
        "fp16": False,
        "seed": 42,
        "dataloader_num_workers": 0,
    }


def write_jobs(model_dir: Path, max_samples: int) -> dict[str, Path]:
    """prep: every row of the three datasets; train / train_packed: ``max_samples`` rows of each."""
    folder = OUT / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = {
        "prep": base_job(model_dir),
        "train": {**base_job(model_dir), "max_samples": max_samples},
        "train_packed": {**base_job(model_dir), "max_samples": max_samples, "packing": True},
    }
    paths = {}
    for name, job in jobs.items():
        path = folder / f"sft_lora_{name}.yaml"
        path.write_text(yaml.safe_dump(job, sort_keys=False), encoding="utf-8")
        paths[name] = path
    return paths


def input_rows(max_samples: int | None) -> int:
    """Rows the datasets hold (each capped at ``max_samples``, as both sides cap them)."""
    info = json.loads((SHARED_DATA / "dataset_info.json").read_text(encoding="utf-8"))
    total = 0
    for name in DATASETS:
        rows = len(json.loads((SHARED_DATA / info[name]["file_name"]).read_text(encoding="utf-8")))
        total += min(rows, max_samples) if max_samples else rows
    return total


# ---------------------------------------------------------------- the two sides


def prep_command(side: str, jobs: list[Path], repeat: int) -> list[str]:
    """Preprocessing driver of ``side`` timing ``repeat`` calls per job (prints BENCH_RESULT lines)."""
    driver = BENCH / ("lf_driver.py" if side == "lf" else "tunery_driver.py")
    python = LF_PY if side == "lf" else TUNERY_PY
    return [str(python), str(driver), *map(str, jobs), "--repeat", str(repeat)]


def train_command(side: str, job: Path, output_dir: Path, scratch: Path) -> list[str]:
    """Each side's own training command on the shared job file."""
    override = f"output_dir={output_dir}"
    if side == "lf":
        return [str(LF_CLI), "train", str(job), override]
    events = output_dir.parent / f"{output_dir.name}.events.jsonl"
    return [
        str(TUNERY_CLI),
        "train",
        str(job),
        override,
        "--events",
        str(events),
        "--cache-dir",
        str(scratch),
    ]


def tunery_missing() -> list[str]:
    """Engine entry points the Tunery side needs that do not exist yet (empty: ready)."""
    command = [str(TUNERY_PY), str(BENCH / "tunery_driver.py"), "check"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return list(json.loads(line[len(MARKER) :])["missing"])
    return [f"bench/tunery_driver.py check failed: {done.stderr.strip()[-500:]}"]


def ensure_lf() -> None:
    if not LF_CLI.exists():
        subprocess.run(["bash", str(BENCH / "setup_lf.sh")], check=True, cwd=ROOT)


# ---------------------------------------------------------------- measuring a subprocess


@dataclass
class Measured:
    command: list[str]
    returncode: int
    wall_seconds: float
    peak_rss_mb: float  # ru_maxrss of the process (and of the children it waited for)
    log: str
    timed_out: bool = False


def run_measured(command: list[str], env: dict[str, str], log: Path, timeout: float) -> Measured:
    """Run ``command``; wall time and peak RSS come from wait4's rusage of that very process."""
    log.parent.mkdir(parents=True, exist_ok=True)
    timed_out = False
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(command, proc.returncode, wall, usage.ru_maxrss / 1024, str(log), timed_out)


def bench_results(log: str) -> list[dict[str, Any]]:
    """The drivers' ``BENCH_RESULT {json}`` records found in a log."""
    found = []
    for line in Path(log).read_text(encoding="utf-8", errors="replace").splitlines():
        if MARKER in line:
            found.append(json.loads(line[line.index(MARKER) + len(MARKER) :]))
    return found


def log_tail(log: str, lines: int = 8) -> str:
    text = Path(log).read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    kept = [line for line in text.splitlines() if line.strip() and "it/s]" not in line]
    return "\n".join(kept[-lines:])


def bench_env(threads: int, scratch: Path) -> dict[str, str]:
    """Identical environment for both sides: offline, fresh caches, the same thread count."""
    env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "CUDA_VISIBLE_DEVICES"):
        env.pop(key, None)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(scratch / "hf-home"),
        HF_DATASETS_CACHE=str(scratch / "hf-datasets"),
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


# ---------------------------------------------------------------- results


@dataclass
class Results:
    started: str
    args: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    rows_in: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # side -> what is missing
    prep: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)  # side -> job -> non-pad tokens
    train: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    finished: str = ""


def train_record(side: str, job: str, measured: Measured, output_dir: Path, tokens: int | None) -> dict[str, Any]:
    """One training run: the trainer's train_results.json / trainer_state.json plus the measurement."""
    record: dict[str, Any] = {"side": side, "job": job, "wall_seconds": measured.wall_seconds}
    record.update(peak_rss_mb=measured.peak_rss_mb, returncode=measured.returncode, log=measured.log)
    metrics_file = output_dir / "train_results.json"
    if measured.returncode == 0 and metrics_file.exists():
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        record["train_runtime"] = metrics.get("train_runtime")
        record["epoch"] = metrics.get("epoch")
        record["reported_tokens"] = metrics.get("num_input_tokens_seen")
        if tokens and record["train_runtime"]:
            record["tokens_per_second"] = tokens * float(record["epoch"] or 1.0) / record["train_runtime"]
    state_file = output_dir / "trainer_state.json"
    if state_file.exists():
        record["steps"] = json.loads(state_file.read_text(encoding="utf-8")).get("global_step")
    return record


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, dict[str, str]]:
    """Versions of the training stack in each side's venv."""
    code = (
        "import importlib.metadata as m, json\n"
        "def v(p):\n    try: return m.version(p)\n    except m.PackageNotFoundError: return '-'\n"
        f"print(json.dumps({{p: v(p) for p in {[*PACKAGES, 'tunery']!r}}}))"
    )
    found = {}
    for side, python in (("lf", LF_PY), ("tunery", TUNERY_PY)):
        command = [str(python), "-c", code]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
        found[side] = json.loads(done.stdout) if done.returncode == 0 else {}
    return found


def rel(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _sections(text: str) -> list[str]:
    """``text`` cut before each ``## `` heading (the first piece is what precedes the first heading)."""
    starts = [0] + [match.start() + 1 for match in re.finditer(r"\n## ", text)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def section_footer(data: dict[str, Any], raw: str) -> list[str]:
    """The closing lines of a bench section: its failed runs, where its raw numbers are, the versions."""
    lines: list[str] = []
    if data["failures"]:
        lines += ["Failed runs: " + "; ".join(f"{f['name']} (exit {f['returncode']})" for f in data["failures"]), ""]
    return [*lines, f"Raw numbers: `{raw}`; versions: `{json.dumps(data['versions'])}`.", ""]


def replace_section(path: Path, title: str, section: str) -> None:
    """Put ``section`` (Markdown starting with ``## <title>...``) in place of the section of ``path`` whose
    heading starts with ``## <title>``, or append it; everything else in the file is kept."""
    pieces = _sections(path.read_text(encoding="utf-8")) if path.exists() else []
    new = section.strip("\n") + "\n\n"
    found = [i for i, piece in enumerate(pieces) if piece.startswith(f"## {title}")]
    if found:
        pieces[found[0]] = new
    else:
        pieces.append(("\n" if pieces and not pieces[-1].endswith("\n\n") else "") + new)
    path.write_text("".join(pieces).rstrip("\n") + "\n", encoding="utf-8")


def other_sections(path: Path, titles: tuple[str, ...]) -> str:
    """The sections of ``path`` whose headings start with ``## <one of titles>`` (to keep on a rewrite)."""
    if not path.exists():
        return ""
    kept = [p for p in _sections(path.read_text(encoding="utf-8")) if p.startswith(tuple(f"## {t}" for t in titles))]
    return "".join(piece.strip("\n") + "\n\n" for piece in kept)
