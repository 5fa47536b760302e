"""Checkpoint folders: which are valid, which to resume from, and whether output_dir may be written."""

from __future__ import annotations

import shutil
from pathlib import Path

from tunery.engine.train.errors import invalid_spec
from tunery.spec.checkpoints import TRAINER_STATE, checkpoint_step, is_complete_checkpoint
from tunery.spec.training import TrainingSection

TRAINER_LOG = "trainer_log.jsonl"


def list_checkpoints(output_dir: Path) -> list[Path]:
    """checkpoint-N folders in ``output_dir``, oldest step first (valid or not)."""
    if not output_dir.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in output_dir.iterdir() if p.is_dir()]
    return [path for step, path in sorted((s, p) for s, p in found if s is not None)]


def latest_valid_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint; half-written ones (a crash mid-save) are skipped."""
    for path in reversed(list_checkpoints(output_dir)):
        if is_complete_checkpoint(path):
            return path
    return None


def resolve_resume(training: TrainingSection) -> Path | None:
    """The checkpoint to resume from: a given folder, or ``auto`` = newest valid one in output_dir."""
    value = training.resume_from_checkpoint
    if not value:
        return None
    if value == "auto":
        found = latest_valid_checkpoint(Path(training.output_dir))
        if found is None:
            raise invalid_spec(
                "resume_from_checkpoint", f"auto: no complete checkpoint-N folder in {training.output_dir}"
            )
        return found
    path = Path(value)
    if not is_complete_checkpoint(path):
        raise invalid_spec(
            "resume_from_checkpoint", f"{value} is not a complete checkpoint (needs {TRAINER_STATE} and weights)"
        )
    return path


def prepare_output_dir(training: TrainingSection, resume: Path | None) -> None:
    """Refuse to mix a new run into an old one (LF behaviour) unless told to overwrite or resume."""
    output_dir = Path(training.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise invalid_spec("output_dir", f"{output_dir} exists and is not a folder")
    if resume is None and output_dir.is_dir() and any(output_dir.iterdir()):
        if not training.overwrite_output_dir:
            hint = "set overwrite_output_dir: true to start over"
            if latest_valid_checkpoint(output_dir) is not None:
                hint += ", or resume_from_checkpoint: auto to continue"
            raise invalid_spec("output_dir", f"{output_dir} already exists and is not empty; {hint}")
        _clear_previous_run(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)


def _clear_previous_run(output_dir: Path) -> None:
    """Overwrite: drop the old run's checkpoints and log, so ``auto`` resume never picks them up later."""
    for path in list_checkpoints(output_dir):
        shutil.rmtree(path)
    (output_dir / TRAINER_LOG).unlink(missing_ok=True)
