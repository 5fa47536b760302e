"""SIGTERM: the engine saves a checkpoint at the current step and exits with the cancelled outcome."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.train_data import tiny_data_builder, tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.runner import run_training
from tunery.spec.checkpoints import is_complete_checkpoint
from tunery.spec.events import (
    EXIT_CANCELLED,
    EXIT_SUCCEEDED,
    FinishedEvent,
    StartedEvent,
    parse_event,
)

REPO = Path(__file__).resolve().parents[2]


def read_events(path: Path) -> list[object]:
    if not path.exists():
        return []
    return [parse_event(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_sigterm_saves_a_checkpoint_and_the_run_resumes_from_it(tiny_llama: Path, tmp_path: Path) -> None:
    out, events_file, job = tmp_path / "out", tmp_path / "events.jsonl", tmp_path / "job.json"
    keys = {"max_steps": 12, "save_steps": 1000, "learning_rate": 5e-3}
    job.write_text(json.dumps({**tiny_spec(tiny_llama, out, **keys).to_flat()}), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.train_job", str(job), str(events_file), "0.5"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not any(getattr(e, "type", "") == "progress" and e.step >= 1 for e in read_events(events_file)):  # type: ignore[attr-defined]
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "training never reached step 1"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == EXIT_CANCELLED

    events = read_events(events_file)
    finished = events[-1]
    assert isinstance(finished, FinishedEvent) and finished.outcome == "cancelled"
    assert 1 <= finished.step < 12
    assert finished.checkpoint == str(out / f"checkpoint-{finished.step}")
    assert is_complete_checkpoint(Path(finished.checkpoint))
    assert not (out / "adapter_model.safetensors").exists()  # no final artifacts for a cancelled run
    seqs = [e.seq for e in events]  # type: ignore[attr-defined]
    assert seqs == sorted(set(seqs))

    stream = io.StringIO()
    resumed = tiny_spec(tiny_llama, out, resume_from_checkpoint="auto", **keys)
    assert run_training(resumed, EventSink(stream), build_data=tiny_data_builder()) == EXIT_SUCCEEDED
    later = [parse_event(line) for line in stream.getvalue().splitlines()]
    started = next(e for e in later if isinstance(e, StartedEvent))
    assert started.resumed_from == finished.checkpoint
    done = later[-1]
    assert isinstance(done, FinishedEvent) and done.outcome == "succeeded" and done.step == 12
