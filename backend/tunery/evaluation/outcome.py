"""What each evaluation hands back to the runner, which turns it into an ``eval_result`` event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

#: ``progress(done, total)``: units (rows, questions, judge calls) finished so far
Progress = Callable[[int, int], None]


@dataclass
class EvalOutcome:
    name: str
    kind: Literal["predict", "benchmark", "judge"]
    metrics: dict[str, float]
    #: benchmarks: {"subject": {...}, "category": {...}} accuracies in percent
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    #: per-sample JSON-lines file, relative to the output folder
    samples_file: str | None = None
    samples: int = 0
