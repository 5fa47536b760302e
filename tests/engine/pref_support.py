"""Hand-made preference data in the tokenized-row contract (prompt_ids/chosen_ids/rejected_ids, kto rows) and
helpers to run the preference stages through ``run_training``."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.train_data import tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.runner import run_training, setup_training, train_and_save
from tunery.spec import JobSpec
from tunery.spec.events import Event, FinishedEvent, ProgressEvent, parse_event

WORDS = ["apple", "river", "stone", "cloud", "green", "music", "table", "light", "paper", "dog", "sun", "tree"]
GOOD, BAD = " yes, certainly.", " no."


@dataclass
class RowData:
    """Same fields as the tokenize pipeline's TrainingData; the collator is not used by these stages."""

    train_dataset: list[dict[str, Any]]
    eval_dataset: list[dict[str, Any]] | None
    collator: Any = None
    stats: dict[str, Any] = field(default_factory=dict)


def encode(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def prompts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"Question: {' '.join(rng.sample(WORDS, 3))}?" for _ in range(count)]


def pair_rows(tokenizer: Any, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """A learnable task: the chosen answer is always GOOD, the rejected one BAD (each ends with eos)."""
    eos = [tokenizer.eos_token_id]
    return [
        {
            "prompt_ids": encode(tokenizer, text),
            "chosen_ids": encode(tokenizer, GOOD) + eos,
            "rejected_ids": encode(tokenizer, BAD) + eos,
        }
        for text in prompts(count, seed)
    ]


def kto_rows(tokenizer: Any, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Half desirable (GOOD), half undesirable (BAD) answers to random prompts."""
    eos = [tokenizer.eos_token_id]
    return [
        {
            "prompt_ids": encode(tokenizer, text),
            "completion_ids": encode(tokenizer, GOOD if index % 2 == 0 else BAD) + eos,
            "label": index % 2 == 0,
        }
        for index, text in enumerate(prompts(count, seed))
    ]


def row_builder(kind: str, train_rows: int = 16, eval_rows: int = 0) -> Any:
    """A DataBuilder for run_training giving ``kind`` ("pairwise" or "kto") rows."""
    make = pair_rows if kind == "pairwise" else kto_rows

    def build(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> RowData:
        evaluation = make(tokenizer, eval_rows, seed=1) if eval_rows else None
        return RowData(make(tokenizer, train_rows, seed=0), evaluation)

    return build


def run_stage(model_dir: Path, output_dir: Path, builder: Any = None, **keys: Any) -> tuple[int, list[Event]]:
    """run_training on the tiny model with hand-made rows (or the real pipeline when ``builder`` is None and
    ``dataset``/``dataset_dir`` are given); returns the exit code and the events."""
    stream = io.StringIO()
    code = run_training(tiny_spec(model_dir, output_dir, **keys), EventSink(stream), build_data=builder)
    return code, [parse_event(line) for line in stream.getvalue().splitlines()]


def progress_metrics(events: list[Event]) -> list[dict[str, float]]:
    return [event.metrics for event in events if isinstance(event, ProgressEvent) and event.loss is not None]


def finished(events: list[Event]) -> FinishedEvent:
    last = events[-1]
    assert isinstance(last, FinishedEvent), events[-3:]
    return last


def eval_before_and_after(
    model_dir: Path, output_dir: Path, builder: Any, **keys: Any
) -> tuple[dict[str, float], dict[str, float]]:
    """Train with the runner and return the held-out metrics before the first step and after the last."""
    spec = tiny_spec(model_dir, output_dir, do_eval=True, **keys)
    sink = EventSink(io.StringIO())
    with CancelRequest() as cancel:
        session = setup_training(spec, sink, cancel, build_data=builder)
        before = session.trainer.evaluate()
        assert train_and_save(session, sink) == 0
    after: dict[str, float] = json.loads((output_dir / "eval_results.json").read_text(encoding="utf-8"))
    return before, after


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a busy machine its spin-waits cost seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
