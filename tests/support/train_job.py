"""Run one tiny training job in its own process, for the signal tests.

``python -m tests.support.train_job JOB_JSON EVENTS_JSONL [SECONDS_PER_STEP]``: JOB_JSON holds flat spec keys;
events are appended to EVENTS_JSONL; the exit code is run_training's. A per-step pause keeps the job running
long enough to be signalled mid-training.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tests.support.train_data import tiny_data_builder
from tunery.engine.events import EventSink
from tunery.engine.train.runner import run_training
from tunery.spec import JobSpec


class PauseEachStep(TrainerCallback):  # type: ignore[misc]
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(self.seconds)


def main(argv: list[str]) -> int:
    spec = JobSpec.from_mapping(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    pause = float(argv[2]) if len(argv) > 2 else 0.0
    with open(argv[1], "a", encoding="utf-8") as stream:
        sink = EventSink(stream)
        callbacks = [PauseEachStep(pause)] if pause else []
        return run_training(spec, sink, build_data=tiny_data_builder(), callbacks=callbacks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
