"""What evaluations can measure: metrics (``tunery.spec.eval_metrics``) and the benchmark sets
(``tunery.evaluation.benchmark_data``: torch-free, so the API lists them in-process)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from tunery.server.config import Settings
from tunery.spec.eval_metrics import METRICS_BY_NAME

log = logging.getLogger(__name__)
BENCHMARK_MODULE = "tunery.evaluation.benchmark_data"


class Benchmark(Protocol):
    """The fields of ``tunery.evaluation.benchmark_data.BenchmarkInfo`` the server reads."""

    @property
    def task(self) -> str: ...

    @property
    def splits(self) -> list[str]: ...

    @property
    def languages(self) -> list[str]: ...


def list_benchmarks(settings: Settings) -> list[Any]:
    """The bundled benchmark sets and those in ``benchmark_dir``; [] when the evaluation package has none."""
    try:
        module = importlib.import_module(BENCHMARK_MODULE)
    except ImportError:
        return []
    lister: Callable[[str | None], list[Any]] = module.list_benchmarks
    folder = str(settings.benchmark_dir) if settings.benchmark_dir is not None else None
    try:
        return list(lister(folder))
    except (OSError, ValueError):
        log.warning("could not list the benchmarks in %s", folder, exc_info=True)
        return []


def split_task(task: str) -> tuple[str, str]:
    """``"mmlu_test"`` -> ("mmlu", "test"); LLaMA-Factory's ``task`` is the folder and the split."""
    name, sep, split = task.rpartition("_")
    return (name, split) if sep and name else (task, "")


def find_benchmark(settings: Settings, name: str) -> Benchmark | None:
    found: Benchmark | None = next((b for b in list_benchmarks(settings) if b.task == name), None)
    return found


def direction(metric: str) -> bool | None:
    """True when higher is better, False when lower is, None when neither or the metric is unknown."""
    info = METRICS_BY_NAME.get(metric)
    return info.higher_is_better if info is not None else None
