"""Eval job files (torch-free): ``tunery eval`` reads the same job files as ``tunery train`` with other
defaults. An eval job does not train (``do_train`` defaults to false; true is refused); without ``task`` or
``judge_predictions`` it is a prediction run, so ``do_predict`` and ``predict_with_generate`` default to
true (LLaMA-Factory's predict YAML sets both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunery.spec import JobSpec, SpecError
from tunery.spec.errors import SpecProblem
from tunery.spec.job import read_flat


def with_eval_defaults(flat: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """``flat`` (LF keys) with the eval job defaults filled in; SpecError when it asks to train."""
    values = dict(flat)
    if values.get("do_train"):
        raise SpecError(
            [SpecProblem("do_train", "an eval job does not train; use tunery train (do_predict predicts after it)")],
            source,
        )
    values["do_train"] = False
    if not values.get("task") and not values.get("judge_predictions"):
        values.setdefault("do_predict", True)
        values.setdefault("predict_with_generate", True)
    return values


def load_eval_spec(path: str | Path, overrides: list[str] | None = None) -> JobSpec:
    """Read an eval job file, apply ``key=value`` overrides, fill the eval defaults, validate."""
    return JobSpec.from_mapping(with_eval_defaults(read_flat(path, overrides), str(path)), source=str(path))
