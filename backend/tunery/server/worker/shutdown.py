"""A flag the worker's main process raises when it begins to shut down, seen by its forked pool processes.

Celery may still hand out a message during a warm shutdown; a pool process then starts nothing new and
sends the job back to the queue for the next worker.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

_flag: Any = None  # a multiprocessing Event: shared with the children forked after install()


def install() -> None:
    """Call in the main process before the pool is forked."""
    global _flag
    _flag = multiprocessing.get_context("fork").Event()


def request() -> None:
    if _flag is not None:
        _flag.set()


def requested() -> bool:
    return _flag is not None and bool(_flag.is_set())
