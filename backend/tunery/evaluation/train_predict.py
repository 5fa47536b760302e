"""``tunery train`` with ``do_predict`` (LLaMA-Factory's semantics): after training succeeded, predict the eval
rows with the trained model (LoRA: the base model with the adapter saved in ``output_dir``; full and
freeze: the model saved in ``output_dir``); with ``do_train: false``, predict with the spec's model only.

The engine never imports evaluation, so this lives beside it and the command line calls it. One event
stream: training's events, then the prediction's log and ``eval_result`` events, then one ``finished`` event
(training's, with the prediction figures added as ``"<name>/<metric>"``) — or ``failed`` / a cancelled
``finished`` if the prediction fails or is cancelled. The prediction's own started/progress events are not
relayed (the stream's steps stay training steps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunery.engine.events import EventSink
from tunery.spec import JobSpec
from tunery.spec.events import EXIT_SUCCEEDED, Event, FinishedEvent, ProgressEvent, StartedEvent


class _Relay(EventSink):
    """Passes events to ``inner`` (one numbering) except the types in ``hold``, which are kept here."""

    def __init__(self, inner: EventSink, hold: tuple[type[Any], ...]) -> None:
        super().__init__(None, keep=False)
        self.inner = inner
        self.hold = hold
        self.held: list[Event] = []

    def emit(self, event_type: type[Any], **fields: Any) -> Event:
        if event_type in self.hold:
            event: Event = event_type(seq=self.inner.last_seq, **fields)
            self.held.append(event)
            return event
        return self.inner.emit(event_type, **fields)

    @property
    def last_seq(self) -> int:
        return self.inner.last_seq


def predict_spec(spec: JobSpec) -> JobSpec:
    """The spec predicting with the model training left in ``output_dir``."""
    if not spec.training.do_train:
        return spec
    output_dir = spec.training.output_dir
    if spec.method.finetuning_type == "lora":
        model = spec.model.model_copy(update={"adapter_name_or_path": [output_dir]})
    else:
        model = spec.model.model_copy(
            update={"model_name_or_path": output_dir, "adapter_name_or_path": None, "gguf_file": None}
        )
    return spec.model_copy(update={"model": model})


def train_then_predict(spec: JobSpec, sink: EventSink, *, cache_dir: Path | None = None) -> int:
    """Train (if ``do_train``), then predict (``do_predict``); the exit code of the whole."""
    from tunery.engine.train.runner import run_training
    from tunery.evaluation.runner import run_evaluation

    if not spec.training.do_train:
        return run_evaluation(spec, sink, cache_dir=cache_dir)
    training_sink = _Relay(sink, (FinishedEvent,))
    code = run_training(spec, training_sink, cache_dir=cache_dir)
    finished = [event for event in training_sink.held if isinstance(event, FinishedEvent)]
    if code != EXIT_SUCCEEDED or not finished or finished[-1].outcome != "succeeded":
        for event in finished:  # a cancelled run: its finished event as it was
            sink.emit(FinishedEvent, **event.model_dump(exclude={"seq", "time", "type"}))
        return code
    trained = finished[-1]
    predict_sink = _Relay(sink, (StartedEvent, ProgressEvent, FinishedEvent))
    code = run_evaluation(predict_spec(spec), predict_sink, cache_dir=cache_dir)
    predicted = [event for event in predict_sink.held if isinstance(event, FinishedEvent)]
    if not predicted:  # failed: the failed event went out already
        return code
    fields = trained.model_dump(exclude={"seq", "time", "type"})
    fields["metrics"] = {**trained.metrics, **predicted[-1].metrics}
    fields["outcome"] = predicted[-1].outcome
    sink.emit(FinishedEvent, **fields)
    return code
