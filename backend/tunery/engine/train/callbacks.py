"""Trainer callbacks that turn the training loop into typed events and LF's ``trainer_log.jsonl``."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunery.engine.events import EventSink
from tunery.engine.train.checkpoints import TRAINER_LOG
from tunery.spec.events import CheckpointEvent, EvalEvent, ProgressEvent, StartedEvent

#: Log keys of the trainer's end-of-training summary (not a progress record).
_SUMMARY_KEYS = ("train_loss",)
#: Log keys a progress event carries in its own fields (every other number goes to ``metrics``).
_PROGRESS_KEYS = ("loss", "learning_rate", "grad_norm", "epoch", "num_input_tokens_seen")


@dataclass
class RunFacts:
    """What the started event reports besides the trainer's own state."""

    stage: str
    finetuning_type: str
    trainable_params: int
    total_params: int
    num_train_examples: int | None
    num_eval_examples: int | None
    device: str
    resumed_from: str | None = None


class EventCallback(TrainerCallback):  # type: ignore[misc]
    """started / progress / eval / checkpoint events, and one LF-style JSON line per trainer log."""

    def __init__(self, sink: EventSink, facts: RunFacts, progress_interval: float = 5.0) -> None:
        self.sink = sink
        self.facts = facts
        self.progress_interval = progress_interval
        self._start = time.monotonic()
        self._start_step = 0
        self.start_tokens = 0
        #: the epoch this run's training began at (past 0 when resumed)
        self.start_epoch = 0.0
        self._last_progress = 0.0

    # ---- loop events ----

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._start = self._last_progress = time.monotonic()
        self._start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen or 0
        self.start_epoch = float(state.epoch or 0.0)
        if not args.should_save:
            return
        f = self.facts
        self.sink.emit(
            StartedEvent,
            stage=f.stage,
            finetuning_type=f.finetuning_type,
            total_steps=state.max_steps,
            num_train_examples=f.num_train_examples,
            num_eval_examples=f.num_eval_examples,
            trainable_params=f.trainable_params,
            total_params=f.total_params,
            resumed_from=f.resumed_from,
            device=f.device,
        )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        """A loss-less progress event now and then between logging steps, so a bar keeps moving."""
        if not args.should_save or control.should_log:
            return
        if time.monotonic() - self._last_progress >= self.progress_interval:
            self._emit_progress(state, {})

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not args.should_save or not logs:
            return
        self._write_trainer_log(Path(str(args.output_dir)), state, logs)
        if any(key in logs for key in _SUMMARY_KEYS):
            return
        if "loss" in logs:
            self._emit_progress(state, logs)
        metrics = {k: float(v) for k, v in logs.items() if k.startswith("eval_") and _is_number(v)}
        if metrics:
            self.sink.emit(EvalEvent, step=state.global_step, epoch=float(state.epoch or 0.0), metrics=metrics)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if args.should_save:
            path = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
            self.sink.emit(CheckpointEvent, step=state.global_step, path=str(path))

    # ---- helpers ----

    def timing(self, state: TrainerState) -> tuple[float, float | None]:
        """(seconds since this run's training began, estimated seconds left)."""
        elapsed = time.monotonic() - self._start
        done = state.global_step - self._start_step
        left = state.max_steps - state.global_step
        eta = elapsed / done * left if done > 0 else None
        return elapsed, eta

    def tokens_per_second(self, state: TrainerState, elapsed: float) -> float | None:
        tokens = (state.num_input_tokens_seen or 0) - self.start_tokens
        return round(tokens / elapsed, 2) if tokens > 0 and elapsed > 0 else None

    def _emit_progress(self, state: TrainerState, logs: dict[str, Any]) -> None:
        self._last_progress = time.monotonic()
        elapsed, eta = self.timing(state)
        self.sink.emit(
            ProgressEvent,
            step=state.global_step,
            total_steps=state.max_steps,
            epoch=float(state.epoch or 0.0),
            loss=_number(logs.get("loss")),
            lr=_number(logs.get("learning_rate")),
            grad_norm=_number(logs.get("grad_norm")),
            tokens_per_second=self.tokens_per_second(state, elapsed),
            metrics=stage_metrics(logs),
            elapsed_seconds=round(elapsed, 3),
            eta_seconds=None if eta is None else round(eta, 3),
        )

    def _write_trainer_log(self, output_dir: Path, state: TrainerState, logs: dict[str, Any]) -> None:
        """LLaMA-Factory's ``trainer_log.jsonl`` record (read by its web UI and plotting tools)."""
        elapsed, eta = self.timing(state)
        total = state.max_steps
        record: dict[str, Any] = {
            "current_steps": state.global_step,
            "total_steps": total,
            "loss": logs.get("loss"),
            "eval_loss": logs.get("eval_loss"),
            "lr": logs.get("learning_rate"),
            "epoch": logs.get("epoch"),
            "percentage": round(state.global_step / total * 100, 2) if total else 100,
            "elapsed_time": str(timedelta(seconds=int(elapsed))),
            "remaining_time": str(timedelta(seconds=int(eta or 0))),
        }
        if state.num_input_tokens_seen:
            record["throughput"] = self.tokens_per_second(state, elapsed)
            record["total_tokens"] = state.num_input_tokens_seen
        record = {key: value for key, value in record.items() if value is not None}
        output_dir.mkdir(parents=True, exist_ok=True)
        with (output_dir / TRAINER_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")


def stage_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """A training log's numbers besides loss, lr and grad norm: what the stage reports (rewards, kl, ...)."""
    return {
        key: float(value)
        for key, value in logs.items()
        if key not in _PROGRESS_KEYS and not key.startswith("eval_") and _is_number(value)
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None
