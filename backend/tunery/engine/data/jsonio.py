"""JSON parsing: orjson when it accepts the text (several times faster), else the standard library,
which also accepts NaN, lone surrogates and huge integers and gives the error messages."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    import orjson

    _fast_loads: Any = orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency; stay correct without it
    _fast_loads = json.loads


def loads(data: bytes | str) -> Any:
    try:
        return _fast_loads(data)
    except ValueError:
        return json.loads(data)  # raises json.JSONDecodeError with the standard messages


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small objects are built (rows, messages):
    its repeated full passes over the growing heap would cost more than the work itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
