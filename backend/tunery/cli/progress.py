"""A terminal progress bar fed by the engine's events."""

from __future__ import annotations

from typing import Any, TextIO

from tqdm import tqdm

from tunery.spec.events import (
    BestCheckpointEvent,
    CheckpointEvent,
    EvalEvent,
    EvalResultEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LogEvent,
    ProgressEvent,
    StartedEvent,
)


class ProgressPrinter:
    """Shows one bar for the steps and prints eval, checkpoint and final lines above it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: tqdm[Any] | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StartedEvent):
            if event.stage == "eval":
                self._write(f"evaluating on {event.device}: {event.total_steps} units of work")
            else:
                self._write(
                    f"training {event.stage}/{event.finetuning_type} on {event.device}: "
                    f"{event.num_train_examples} examples, {event.total_steps} steps, "
                    f"{event.trainable_params:,} of {event.total_params:,} parameters trainable"
                )
            unit = "row" if event.stage == "eval" else "step"
            self._bar = tqdm(total=event.total_steps, file=self._stream, unit=unit, dynamic_ncols=True)
        elif isinstance(event, ProgressEvent) and self._bar is not None:
            self._bar.update(event.step - self._bar.n)
            postfix = {"loss": event.loss, "lr": event.lr, "tok/s": event.tokens_per_second}
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items() if v is not None})
        elif isinstance(event, EvalEvent):
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
            self._write(f"eval at step {event.step}: {metrics}")
        elif isinstance(event, CheckpointEvent):
            self._write(f"checkpoint saved: {event.path}")
        elif isinstance(event, BestCheckpointEvent):
            self._write(f"best so far by {event.metric} ({event.value:.4g}): {event.path}")
        elif isinstance(event, EvalResultEvent):
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
            self._write(f"{event.kind} {event.name}: {metrics}")
        elif isinstance(event, LogEvent) and event.level in ("warning", "error"):
            self._write(f"{event.level}: {event.message}")
        elif isinstance(event, FinishedEvent):
            self._close()
            early = " (stopped early)" if event.stopped_early else ""
            self._write(f"{event.outcome} at step {event.step}{early}; outputs in {event.output_dir}")
            if event.best_checkpoint:
                self._write(f"best checkpoint: {event.best_checkpoint}")
        elif isinstance(event, FailedEvent):
            self._close()
            self._write(f"failed ({event.code}): {event.message}")

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self._stream)
        else:
            self._stream.write(text + "\n")

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
