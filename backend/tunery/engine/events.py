"""Writing the typed event stream: numbered events as JSON lines to a file object."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO, Any

from tunery.spec.events import EVENT_ADAPTER, Event


class EventSink:
    """Numbers events and writes each as one JSON line; also keeps them for callers in the same process."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        start_seq: int = 0,
        keep: bool = True,
        listeners: list[Callable[[Event], None]] | None = None,
    ) -> None:
        self._stream = stream
        self._listeners = listeners or []
        self._seq = start_seq
        self._lock = threading.Lock()
        self._keep = keep
        self.events: list[Event] = []

    def emit(self, event_type: type[Any], **fields: Any) -> Event:
        with self._lock:
            self._seq += 1
            event: Event = event_type(seq=self._seq, **fields)
            if self._keep:
                self.events.append(event)
            if self._stream is not None:
                self._stream.write(EVENT_ADAPTER.dump_json(event).decode() + "\n")
                self._stream.flush()
        for listener in self._listeners:
            listener(event)
        return event

    @property
    def last_seq(self) -> int:
        return self._seq
