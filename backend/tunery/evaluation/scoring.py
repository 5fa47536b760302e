"""Scoring answers while the model is still generating: per-sample metrics in worker processes.

LLaMA-Factory's BLEU/ROUGE (jieba, nltk, rouge_chinese) are pure Python and cost about as much CPU as
generating with a small model; LF computes them after the last batch, in the process that generates.
Here answers are scored in chunks as they arrive by worker processes (``python -m
tunery.evaluation.scoring``: the same code, so the same figures; JSON lines over pipes, floats round-trip
exactly). The workers get the labels first and do the label-only half of the work (jieba words, n-gram
counts: most of it, labels are longer than answers) while the model loads and generates; row ``i`` goes to
worker ``i % workers``, which holds its label. Small runs (below :data:`BACKGROUND_MIN_ROWS`) are scored
in this process: starting a worker costs more than it saves.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import IO

from tunery.evaluation.metrics import Reference, Sample, Scores, prepare, score_each

#: rows from which answers are scored in worker processes
BACKGROUND_MIN_ROWS = 64
#: answers sent to a worker at once
CHUNK = 32
#: labels the workers prepare ahead of the answers (bounds their memory on large eval sets)
LOOKAHEAD = 4096


def worker_count() -> int:
    """Workers beside the generating process: the cores left, at most 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class _Worker:
    """One scoring process: chunks go in on stdin, their scores come back on stdout (a reader thread)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tunery.evaluation.scoring", json.dumps(list(names))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.futures: dict[int, Future[list[Scores]]] = {}
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, name="scoring-reader", daemon=True)
        self.reader.start()

    def _send(self, message: dict[str, object]) -> None:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
        stdin.flush()

    def labels(self, labels: Sequence[tuple[int, str]]) -> None:
        """Labels of the rows this worker will score, to prepare ahead."""
        self._send({"labels": [list(item) for item in labels]})

    def submit(self, key: int, samples: Sequence[tuple[int, Sample]]) -> Future[list[Scores]]:
        future: Future[list[Scores]] = Future()
        with self.lock:
            self.futures[key] = future
        rows = [[index, s.predict, s.label, s.predict_tokens] for index, s in samples]
        self._send({"id": key, "samples": rows})
        return future

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            message = json.loads(line)
            with self.lock:
                future = self.futures.pop(int(message["id"]))
            future.set_result(message["scores"])
        with self.lock:  # the process ended: whatever is still waiting fails
            for future in self.futures.values():
                future.set_exception(RuntimeError(f"scoring process ended (exit {self.process.poll()})"))
            self.futures.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Scorer:
    """Collects answers by row index and scores them in chunks (in workers, or here when ``workers`` is 0).
    ``labels``: every row's label, handed to the workers up front."""

    def __init__(self, names: Sequence[str], workers: int, labels: Sequence[str] = ()) -> None:
        self.names = list(names)
        self.workers = [_Worker(self.names) for _ in range(workers)] if self.names else []
        self.parts: list[tuple[list[int], Future[list[Scores]] | list[Scores]]] = []
        self.waiting: list[list[tuple[int, Sample]]] = [[] for _ in self.workers] or [[]]
        self.labels = labels
        self.sent = 0  # labels of rows [0, sent) went to the workers
        self._send_labels(0)

    def _send_labels(self, index: int) -> None:
        """Keep the workers :data:`LOOKAHEAD` labels ahead of row ``index`` (rows end roughly in order)."""
        if not self.workers or self.sent >= min(len(self.labels), index + LOOKAHEAD // 2):
            return
        end = min(len(self.labels), index + LOOKAHEAD)
        for number, worker in enumerate(self.workers):
            rows = range(self.sent, end)
            worker.labels([(i, self.labels[i]) for i in rows if i % len(self.workers) == number])
        self.sent = end

    def add(self, index: int, sample: Sample) -> None:
        self._send_labels(index)
        lane = index % len(self.waiting)
        self.waiting[lane].append((index, sample))
        if self.workers and len(self.waiting[lane]) >= CHUNK:
            self.flush(lane)

    def flush(self, lane: int) -> None:
        """Score the answers waiting for worker ``lane`` (here, without workers)."""
        waiting, self.waiting[lane] = self.waiting[lane], []
        if not waiting:
            return
        indices = [index for index, _ in waiting]
        if self.workers:
            self.parts.append((indices, self.workers[lane].submit(len(self.parts), waiting)))
        else:
            self.parts.append((indices, score_each([sample for _, sample in waiting], self.names)))

    def results(self, rows: int) -> list[Scores]:
        """Every row's scores, by row index (waits for the workers)."""
        for lane in range(len(self.waiting)):
            self.flush(lane)
        out: list[Scores] = [{} for _ in range(rows)]
        for indices, part in self.parts:
            scores = part.result() if isinstance(part, Future) else part
            for index, value in zip(indices, scores, strict=True):
                out[index] = value
        return out

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers = []


def serve(names: Sequence[str]) -> None:
    """The worker's loop: labels to prepare, chunks of answers to score (read from stdin)."""
    score_each([Sample("warm up 预热", "warm up 预热", 1)], names)  # jieba's dictionary, before the first chunk
    references: dict[int, Reference] = {}
    for line in sys.stdin:
        message = json.loads(line)
        if "labels" in message:
            for index, label in message["labels"]:
                references[int(index)] = prepare(Reference(label), names)
            continue
        rows = message["samples"]
        samples = [Sample(predict, label, int(tokens)) for _, predict, label, tokens in rows]
        scores = score_each(samples, names, [references.pop(int(row[0]), None) for row in rows])
        sys.stdout.write(json.dumps({"id": message["id"], "scores": scores}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
