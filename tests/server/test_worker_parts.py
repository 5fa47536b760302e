"""Worker pieces without a database: GPU discovery, outcomes, artifact kinds, the job file, options."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from pydantic import SecretStr

from tunery.server.config import Settings
from tunery.server.db.models import JobStatus
from tunery.server.worker.artifacts import kind_of, scan_output
from tunery.server.worker.context import WorkerOptions
from tunery.server.worker.finish import decide
from tunery.server.worker.gpus import GpuInfo, discover_gpus, parse_nvidia_smi, select_gpus
from tunery.server.worker.jobfile import write_job_file
from tunery.spec import JobSpec, SpecError
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_SUCCEEDED,
    FailedEvent,
    FinishedEvent,
)

SMI_OUTPUT = "0, NVIDIA H100 80GB HBM3, 81559 MiB\n1, NVIDIA H100 80GB HBM3, 81559 MiB\n"


def test_nvidia_smi_rows_are_parsed() -> None:
    assert parse_nvidia_smi(SMI_OUTPUT + "\n") == [
        GpuInfo(0, "NVIDIA H100 80GB HBM3", 81559),
        GpuInfo(1, "NVIDIA H100 80GB HBM3", 81559),
    ]
    assert parse_nvidia_smi("3, Some, GPU, with commas, [N/A]") == [GpuInfo(3, "Some, GPU, with commas", 0)]
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("garbage")


def test_discovery_runs_nvidia_smi_and_falls_back_to_cpu(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = --query-gpu=index,name,memory.total ] && printf '{SMI_OUTPUT}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert [gpu.index for gpu in discover_gpus(str(fake))] == [0, 1]
    broken = tmp_path / "broken-smi"
    broken.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    assert discover_gpus(str(broken)) == []
    assert discover_gpus(str(tmp_path / "missing")) == []


def test_cuda_visible_devices_restricts_the_worker() -> None:
    gpus = parse_nvidia_smi(SMI_OUTPUT)
    assert select_gpus(gpus, None) == gpus
    assert select_gpus(gpus, "1") == gpus[1:]
    assert select_gpus(gpus, "") == []


FINISHED = FinishedEvent(seq=9, outcome="succeeded", step=4, output_dir="/o")
STOPPED = FinishedEvent(seq=9, outcome="cancelled", step=2, output_dir="/o", checkpoint="/o/checkpoint-2")
FAILED = FailedEvent(seq=3, code="out_of_memory", message="CUDA out of memory")


@pytest.mark.parametrize(
    ("terminal", "code", "cancel", "interrupted", "status", "error_code"),
    [
        (FINISHED, EXIT_SUCCEEDED, False, False, JobStatus.SUCCEEDED, None),
        (FINISHED, -signal.SIGKILL, False, False, JobStatus.FAILED, "engine_crashed"),  # died after reporting
        (FAILED, EXIT_FAILED, False, False, JobStatus.FAILED, "out_of_memory"),
        (STOPPED, EXIT_CANCELLED, True, False, JobStatus.CANCELLED, None),
        (STOPPED, EXIT_CANCELLED, False, False, None, None),  # stopped by a worker shutdown: re-queued
        (None, -signal.SIGKILL, True, False, JobStatus.CANCELLED, None),  # killed after the grace period
        (None, -signal.SIGTERM, False, False, None, None),  # SIGTERM before the engine could report
        (None, EXIT_CANCELLED, False, True, None, None),  # the worker's main process went away
        (None, -signal.SIGSEGV, False, False, JobStatus.FAILED, "engine_crashed"),
        (None, EXIT_INVALID, False, False, JobStatus.FAILED, "invalid_spec"),  # refused by the command line
    ],
)
def test_outcome_of_an_attempt(
    terminal: FinishedEvent | FailedEvent | None,
    code: int,
    cancel: bool,
    interrupted: bool,
    status: JobStatus | None,
    error_code: str | None,
) -> None:
    outcome = decide(terminal, code, cancel_requested=cancel, interrupted=interrupted)
    assert (outcome.status, outcome.error_code) == (status, error_code)


def test_a_crash_reports_the_engines_last_words() -> None:
    tail = ["Traceback (most recent call last):", "MemoryError"]
    crashed = decide(None, -signal.SIGKILL, cancel_requested=False, interrupted=False, stderr_tail=tail)
    assert crashed.message.startswith("the engine was killed by signal 9") and crashed.message.endswith("MemoryError")
    refused = decide(None, EXIT_INVALID, cancel_requested=False, interrupted=False, stderr_tail=["error: bad key"])
    assert refused.message == "error: bad key"


def test_artifact_kinds_and_hashes(tmp_path: Path) -> None:
    assert kind_of("adapter_model.safetensors") == "adapter"
    assert kind_of("model-00001-of-00002.safetensors") == "model"
    assert kind_of("tokenizer_config.json") == "tokenizer"
    assert kind_of("training_loss.png") == "plot"
    assert kind_of("eval_results.json") == "results"
    assert kind_of("training_args.bin") is None
    output = tmp_path / "jobs" / "j" / "output"
    (output / "checkpoint-2").mkdir(parents=True)
    (output / "adapter_model.safetensors").write_bytes(b"abc")
    (output / "notes.txt").write_text("x")
    found = scan_output(tmp_path, output)
    assert [(a.name, a.kind, a.path, a.size_bytes) for a in found] == [
        ("adapter_model.safetensors", "adapter", "jobs/j/output/adapter_model.safetensors", 3)
    ]
    assert found[0].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_job_file_points_at_the_job_folder(tmp_path: Path) -> None:
    spec = JobSpec.from_mapping(
        {"model_name_or_path": "m", "dataset": "d", "dataset_dir": "/data", "output_dir": "/elsewhere"}
    ).model_dump(mode="json")
    files = write_job_file(tmp_path, "abc", spec, None)
    written = yaml.safe_load(files.job_file.read_text())
    assert files.job_file == tmp_path / "jobs" / "abc" / "job.yaml"
    assert written["training"]["output_dir"] == str(tmp_path / "jobs" / "abc" / "output")
    assert written["training"]["overwrite_output_dir"] is True and written["data"]["dataset_dir"] == "/data"
    resumed = yaml.safe_load(write_job_file(tmp_path, "abc", spec, "jobs/abc/output/checkpoint-4").job_file.read_text())
    assert resumed["training"]["resume_from_checkpoint"] == str(tmp_path / "jobs/abc/output/checkpoint-4")
    assert "overwrite_output_dir" not in resumed["training"]
    assert JobSpec.from_mapping(resumed).training.output_dir == str(tmp_path / "jobs" / "abc" / "output")
    with pytest.raises(SpecError):
        write_job_file(tmp_path, "bad", {"model": {}}, None)


def test_worker_options_from_the_environment(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, database_url="sqlite://", broker_url="memory://", storage_root=tmp_path,
        secret_key=SecretStr("s"), lease_seconds=90,
    )  # fmt: skip
    options = WorkerOptions.from_settings(settings, {})
    assert (options.lease_seconds, options.heartbeat_seconds, options.reaper_interval_seconds) == (90, 30, 30)
    assert WorkerOptions.from_settings(settings, {"TUNERY_CANCEL_GRACE_SECONDS": "5"}).cancel_grace_seconds == 5
    with pytest.raises(ValueError, match="TUNERY_CANCEL_GRACE_SECONDS"):
        WorkerOptions.from_settings(settings, {"TUNERY_CANCEL_GRACE_SECONDS": "soon"})
    with pytest.raises(ValueError, match="must be > 0"):
        WorkerOptions.from_settings(settings, {"TUNERY_WORKER_POLL_SECONDS": "0"})


def test_launched_command_gets_sigterm_when_its_starter_dies(tmp_path: Path) -> None:
    """What keeps a killed worker from leaving its engine behind: the engine gets SIGTERM (and checkpoints)."""
    marker, ready = tmp_path / "got-sigterm", tmp_path / "ready"
    victim = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(marker)!r}, 'w').close(), sys.exit(0)))\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(300)\n"
    )
    starter = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-m', 'tunery.server.worker.launch', str(os.getpid()), '--',"
        f" sys.executable, '-c', {victim!r}])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:  # exec'ed, handler installed
        time.sleep(0.05)
    assert child.cmdline()[1:2] == ["-c"], "the launcher replaced itself with the command"
    parent.kill()
    parent.wait()
    child.wait(60)
    assert marker.exists()


def test_the_worker_never_imports_torch() -> None:
    """Celery's prefork children hang when the parent ran torch ops: the worker process must stay torch-free."""
    modules = ", ".join(
        f"tunery.server.worker.{name}"
        for name in ("lifecycle", "runner", "reaper", "tasks", "relay", "finish", "watchdog", "launch")
    )
    heavy = "{'torch', 'transformers'}"
    in_process = "tunery.server.cli_processes, tunery.server.services.datasets, tunery.engine.data.load"
    probe = f"import sys, {modules}, {in_process}; print(sorted({heavy} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
