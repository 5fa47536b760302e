"""The best checkpoint by ``metric_for_best_model`` and early stopping (``early_stopping_steps``).

transformers does the bookkeeping: after each evaluation it compares the metric with ``state.best_metric``,
records the best step and checkpoint in the trainer state (written into every checkpoint's
``trainer_state.json``, so a resumed run keeps them), never lets ``save_total_limit`` delete the best checkpoint,
and with ``load_best_model_at_end`` loads it before the final save. This module adds the events
(:class:`BestCheckpointCallback`), early stopping that survives a resume (:class:`EarlyStoppingCallback`) and a
clear error for a metric the evaluations do not report (:func:`best_metric_errors`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from transformers import EarlyStoppingCallback as _TransformersEarlyStopping
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunery.engine.events import EventSink
from tunery.engine.train.errors import invalid_spec
from tunery.spec.events import BestCheckpointEvent

_COUNTER = "early_stopping_patience_counter"


def metric_key(args: TrainingArguments) -> str | None:
    """The eval metric compared (``metric_for_best_model`` with transformers' ``eval_`` prefix), if any."""
    metric = args.metric_for_best_model
    if not metric:
        return None
    return metric if metric.startswith("eval_") else f"eval_{metric}"


class EarlyStoppingCallback(_TransformersEarlyStopping):  # type: ignore[misc]
    """transformers' early stopping, as LLaMA-Factory uses it (patience = ``early_stopping_steps`` evaluations
    without improvement of ``metric_for_best_model``), plus:

    - a resumed run continues the patience count saved in the checkpoint's ``trainer_state.json`` (under this
      class name, the one LF's checkpoints use too). transformers restores callback states only with
      ``restore_callback_states_from_checkpoint``, which also restores the loop's control flags;
    - with several eval sets (``eval_on_each_dataset``) each set is evaluated apart: the sets that do not
      report the metric are skipped quietly instead of warning that early stopping is disabled;
    - ``stopped_at``: the step at which it ended training.
    """

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float | None = 0.0) -> None:
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.stopped_at: int | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        super().on_train_begin(args, state, control, **kwargs)
        name = type(self).__name__
        stored: Any = state.stateful_callbacks  # a dict of states by class name once the state is built
        callbacks: dict[str, Any] = stored if isinstance(stored, dict) else {}
        saved = callbacks.get(name)
        if isinstance(saved, list):
            saved = saved[0] if saved else None
        attributes = saved.get("attributes") if isinstance(saved, dict) else None
        if isinstance(attributes, dict) and isinstance(attributes.get(_COUNTER), int):
            self.early_stopping_patience_counter = attributes[_COUNTER]
        # a checkpoint saved without early stopping has no entry, which transformers' next save would need
        callbacks.setdefault(name, self.state())
        state.stateful_callbacks = callbacks  # type: ignore[assignment]

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        key = metric_key(args)
        if key is None or not metrics or key not in metrics:
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)
        if self.early_stopping_patience_counter >= self.early_stopping_patience and self.stopped_at is None:
            self.stopped_at = state.global_step


class BestCheckpointCallback(TrainerCallback):  # type: ignore[misc]
    """A ``best_checkpoint`` event when the checkpoint just saved is the best so far (after its ``checkpoint``
    event: register this callback after :class:`~tunery.engine.train.callbacks.EventCallback`)."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        key = metric_key(args)
        best = state.best_model_checkpoint
        if not args.should_save or key is None or best is None or state.best_metric is None:
            return
        name = f"checkpoint-{state.global_step}"
        if state.best_global_step != state.global_step or os.path.basename(os.path.normpath(best)) != name:
            return
        path = os.path.join(str(args.output_dir), name)
        self.sink.emit(BestCheckpointEvent, step=state.global_step, path=path, metric=key, value=state.best_metric)


@dataclass
class BestOutcome:
    """What the finished event says about the best model."""

    best_checkpoint: str | None
    stopped_early: bool


def best_outcome(state: TrainerState, early_stopping: EarlyStoppingCallback | None) -> BestOutcome:
    """The best checkpoint still on disk, and whether early stopping ended training before its planned end."""
    best = state.best_model_checkpoint
    best = best if best is not None and os.path.isdir(best) else None
    stopped = early_stopping is not None and early_stopping.stopped_at is not None
    return BestOutcome(best, stopped and state.global_step < state.max_steps)


@contextmanager
def best_metric_errors() -> Iterator[None]:
    """transformers fails with a KeyError at the first evaluation that lacks ``metric_for_best_model``; the spec
    rules refuse unknown names up front, this reports what slips through as the spec problem it is."""
    try:
        yield
    except KeyError as exc:
        message = str(exc.args[0]) if exc.args else ""
        if "metric_for_best_model" not in message:
            raise
        raise invalid_spec("metric_for_best_model", message.replace("`", "")) from exc
