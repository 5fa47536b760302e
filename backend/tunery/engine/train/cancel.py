"""Cancellation by SIGTERM: finish the current step, save a checkpoint, stop with the cancelled outcome."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class Cancelled(Exception):
    """Raised between setup phases when a cancel arrived before training started."""


class CancelRequest:
    """Set by SIGTERM (or :meth:`request`); installed as a context manager around a run."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: Any = None
        self._installed = False

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        self._event.set()

    def raise_if_requested(self) -> None:
        if self.requested:
            raise Cancelled()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.request()

    def __enter__(self) -> CancelRequest:
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._installed = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False


class CancelCallback(TrainerCallback):  # type: ignore[misc]
    """After the step in progress: save a checkpoint there and stop the training loop."""

    def __init__(self, cancel: CancelRequest) -> None:
        self.cancel = cancel
        self.stopped_at: int | None = None

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.cancel.requested and self.stopped_at is None:
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
