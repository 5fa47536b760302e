"""``preprocessing_num_workers``: chunks of examples encoded in worker processes, results in input order.

Workers are forked (as the ``datasets`` library's ``map(num_proc=...)`` that LLaMA-Factory uses forks them), so
the encoding function with its tokenizer and template is inherited rather than pickled; each chunk of examples
goes to a worker and its rows come back pickled. Every chunk is encoded exactly as it would be in one process,
so the rows are identical whatever the number of workers. Small inputs stay in one process (forking and
moving rows between processes would cost more than it saves). Chunks are handed out as the caller reads the
results, a few per worker ahead, so a stream is not read (and held) far ahead of the trainer.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from multiprocessing.pool import AsyncResult
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Fewer examples than this are encoded in one process whatever ``preprocessing_num_workers`` says.
PARALLEL_MIN_EXAMPLES = 16384

#: The function the forked workers run (set just before the fork; each worker keeps its copy).
_TASK: Callable[[Any], Any] | None = None


def _run(item: Any) -> Any:
    assert _TASK is not None, "worker started without a task"
    return _TASK(item)


def workers_for(examples: Iterable[Any], workers: int) -> int:
    """The number of workers to use for ``examples``: 1 for small (sized) inputs."""
    if workers <= 1:
        return 1
    if isinstance(examples, Sized) and len(examples) < PARALLEL_MIN_EXAMPLES:
        return 1
    return workers


def _fork_allowed() -> str | None:
    """Why worker processes cannot be forked here (None when they can)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork processes"
    if multiprocessing.current_process().daemon:
        return "this is a daemon process (a data loader worker), which may not start processes"
    return None


def map_chunks(func: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(func, items)`` in ``workers`` forked processes (in order); in this process when ``workers`` <= 1."""
    reason = _fork_allowed() if workers > 1 else None
    if reason is not None:
        logger.warning("preprocessing_num_workers: tokenizing in one process, %s", reason)
    if workers <= 1 or reason is not None:
        yield from map(func, items)
        return
    global _TASK
    context = multiprocessing.get_context("fork")
    # Forked workers tokenize one chunk each: the tokenizers library's own threads would only compete with the
    # other workers (and it warns when it is forked after using them), so they are off in the workers.
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _TASK = func
    try:
        pool = context.Pool(workers)
    finally:
        _TASK = None
        if previous is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous
    with pool:
        # At most two chunks per worker in flight: a stream is read only a little ahead of its consumer.
        pending: deque[AsyncResult[R]] = deque()
        for item in items:
            pending.append(pool.apply_async(_run, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
