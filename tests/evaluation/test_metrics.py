"""Prediction metrics: the registry matches the spec's names, and BLEU-4 / ROUGE equal LLaMA-Factory's own
``ComputeSimilarity`` on fixed English and Chinese strings (run in bench/.venv-lf when it is there)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tunery.evaluation.metrics import PREDICT_METRIC_REGISTRY, Sample, score_samples
from tunery.spec.eval_metrics import METRICS_BY_NAME
from tunery.spec.evaluation import PREDICT_METRICS

ROOT = Path(__file__).resolve().parents[2]
LF_PYTHON = ROOT / "bench" / ".venv-lf" / "bin" / "python"

PAIRS: list[tuple[str, str]] = [
    ("The quick brown fox", "The quick brown dog"),
    ("Making crepes is easy: mix flour, eggs and milk.", "Making crepes is an easy and delicious process!"),
    ("I'm sorry, I don't know.", "The capital of France is Paris."),
    ("Paris", "Paris"),
    ("  Paris\n", "Paris"),
    ("我爱北京天安门", "我爱北京故宫"),
    ("今天天气很好，我们去公园散步吧。", "今天的天气非常好，适合去公园散步。"),
    ("你好，我是 Tunery 助手。", "您好，我是一个AI助手。"),
    ("", "something"),
    ("something", ""),
    ("   ", "a b"),
    ("!!!", "hello"),
    ("1 2 3 4 5 6 7 8", "1 2 3 4 5 6 7 9"),
    ("a", "a"),
]
#: LLaMA-Factory 0.9.5's per-sample figures for some pairs (so the test means something without its venv)
KNOWN = {
    0: {"bleu-4": 84.0435, "rouge-1": 75.0, "rouge-2": 66.6667, "rouge-l": 75.0},
    5: {"bleu-4": 41.1134, "rouge-1": 57.1429, "rouge-2": 40.0, "rouge-l": 57.1429},
    8: {"bleu-4": 0.0, "rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0},
    10: {"bleu-4": 22.5901, "rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0},
}


def _samples() -> list[Sample]:
    return [Sample(predict, label, len(predict.split())) for predict, label in PAIRS]


def test_registry_names_are_the_spec_names_and_in_the_catalog() -> None:
    assert tuple(PREDICT_METRIC_REGISTRY) == PREDICT_METRICS
    for metric in PREDICT_METRIC_REGISTRY.values():
        for name in (*metric.sample_names, *metric.reported):
            assert name in METRICS_BY_NAME


def test_known_llamafactory_figures() -> None:
    per_sample, _ = score_samples(_samples(), ["bleu", "rouge"])
    for index, expected in KNOWN.items():
        assert per_sample[index] == expected


def test_exact_match_and_length() -> None:
    per_sample, figures = score_samples(_samples(), ["exact_match", "length"])
    matches = [scores["exact_match"] for scores in per_sample]
    assert matches[3] == matches[4] == matches[13] == 100.0  # whitespace around the answer is trimmed
    assert matches[0] == matches[2] == 0.0
    assert figures["exact_match"] == pytest.approx(100 * 3 / len(PAIRS))
    lengths = [len(predict.split()) for predict, _ in PAIRS]
    assert figures["length_max"] == max(lengths)
    assert figures["length_mean"] == pytest.approx(sum(lengths) / len(lengths))
    assert set(per_sample[0]) == {"exact_match", "length"}


def test_only_the_chosen_metrics() -> None:
    per_sample, figures = score_samples(_samples(), ["rouge"])
    assert set(figures) == {"rouge-1", "rouge-2", "rouge-l"}
    assert set(per_sample[0]) == {"rouge-1", "rouge-2", "rouge-l"}


@pytest.fixture(scope="module")
def lf_figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not LF_PYTHON.exists():
        pytest.skip("bench/.venv-lf is missing (bench/setup_lf.sh installs LLaMA-Factory there)")
    scratch = tmp_path_factory.mktemp("lf-metrics")
    request = json.dumps({"scratch": str(scratch), "pairs": [list(pair) for pair in PAIRS]})
    done = subprocess.run(
        [str(LF_PYTHON), str(ROOT / "tests" / "evaluation" / "lf_reference.py"), request],
        capture_output=True, text=True, timeout=300, cwd=scratch, check=False,
    )  # fmt: skip
    if "No module named 'jieba'" in done.stderr or "No module named 'nltk'" in done.stderr:
        pytest.skip("bench/.venv-lf lacks jieba/nltk/rouge-chinese (make bench-predict installs them)")
    assert done.returncode == 0, done.stderr[-3000:]
    figures: dict[str, Any] = json.loads((scratch / "reference.json").read_text())["metrics"]
    return figures


def test_same_figures_as_llamafactory(lf_figures: dict[str, Any]) -> None:
    per_sample, figures = score_samples(_samples(), ["bleu", "rouge"])
    for name, values in lf_figures["per_sample"].items():
        assert [scores[name] for scores in per_sample] == values, name
    assert figures == lf_figures["means"]  # the same float to the last bit
