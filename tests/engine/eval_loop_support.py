"""Runs whose eval loss turns (the tiny model overfits) and helpers to read their events: shared by the tests of
evaluation during training (early stopping, the best checkpoint, several eval sets)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from tests.engine.pref_support import RowData, kto_rows, pair_rows
from tests.support.train_data import TEXTS, PadCollator, TinyTrainingData, tiny_spec, tokenize_rows
from tunery.engine.events import EventSink
from tunery.engine.train.runner import run_training
from tunery.spec import JobSpec
from tunery.spec.events import EvalEvent, Event, FinishedEvent, parse_event

#: Text unlike TEXTS: as the full model learns TEXTS by heart, its loss here falls, then rises.
OTHER = ["Zebras quietly eat purple umbrellas at midnight.", "Seventeen violins argue about soup recipes."]
#: A full fine-tune at this rate overfits within a few steps (eval loss lowest around step 6 of 16).
OVERFIT = {
    "finetuning_type": "full",
    "learning_rate": 1e-2,
    "max_steps": 16,
    "logging_steps": 2,
    "eval_strategy": "steps",
    "eval_steps": 2,
    "save_steps": 2,
    "eval_dataset": "other",
}


def text_builder(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> TinyTrainingData:
    rows = tokenize_rows(tokenizer, TEXTS, spec.method.stage)
    evaluation = tokenize_rows(tokenizer, OTHER, spec.method.stage)
    return TinyTrainingData(rows * 4, evaluation, PadCollator(tokenizer.pad_token_id))


def reversed_preferences(kind: str) -> Any:
    """Train on GOOD over BAD; evaluate on the reverse, so every step the stage learns makes eval worse."""

    def build(spec: JobSpec, tokenizer: Any, template: Any, cache_dir: Path | None) -> RowData:
        if kind == "kto":
            train = kto_rows(tokenizer, 16)
            evaluation = [{**row, "label": not row["label"]} for row in kto_rows(tokenizer, 4, seed=1)]
        else:
            train = pair_rows(tokenizer, 16)
            evaluation = [
                {**row, "chosen_ids": row["rejected_ids"], "rejected_ids": row["chosen_ids"]}
                for row in pair_rows(tokenizer, 4, seed=1)
            ]
        return RowData(train, evaluation)

    return build


def run(model_dir: Path, out: Path, builder: Any = text_builder, **keys: Any) -> tuple[int, list[Event]]:
    stream = io.StringIO()
    code = run_training(tiny_spec(model_dir, out, **keys), EventSink(stream), build_data=builder)
    return code, [parse_event(line) for line in stream.getvalue().splitlines()]


def finished(events: list[Event]) -> FinishedEvent:
    assert isinstance(events[-1], FinishedEvent), events[-3:]
    return events[-1]


def eval_values(events: list[Event], key: str = "eval_loss") -> dict[int, float]:
    return {e.step: e.metrics[key] for e in events if isinstance(e, EvalEvent) and key in e.metrics}


def running_best(values: dict[int, float], greater: bool = False) -> list[int]:
    """Steps whose value beat every earlier one (transformers: strictly better)."""
    steps, best = [], None
    for step, value in sorted(values.items()):
        if best is None or (value > best if greater else value < best):
            steps.append(step)
            best = value
    return steps


def expected_stop(values: dict[int, float], patience: int, greater: bool = False) -> int:
    """The evaluation step at which ``patience`` evaluations in a row have not improved."""
    best, waited = None, 0
    for step, value in sorted(values.items()):
        if best is None or (value > best if greater else value < best):
            best, waited = value, 0
        else:
            waited += 1
            if waited >= patience:
                return step
    raise AssertionError(f"never stopped: {values}")


def same_weights(a: Path, b: Path) -> bool:
    first, second = load_file(str(a)), load_file(str(b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
