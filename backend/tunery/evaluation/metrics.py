"""Prediction metrics: one registry whose names are ``tunery.spec.evaluation.PREDICT_METRICS``.

BLEU-4 and ROUGE-1/2/L are computed exactly as LLaMA-Factory 0.9.5 computes them
(``llamafactory/train/sft/metric.py``, ``ComputeSimilarity``): ROUGE F1 as ``rouge_chinese`` computes it over
jieba words (so Chinese is split into words, English into words and spaces), BLEU as nltk's
``sentence_bleu`` over characters with ``SmoothingFunction().method3``; each sample's score is
``round(score * 100, 4)`` and the figure is numpy's mean over samples. An empty prediction or label
(nothing but whitespace) scores 0 for ROUGE, as in LF. The BLEU and ROUGE arithmetic is
``tunery.evaluation.similarity`` (the same floats as nltk and rouge_chinese, many times faster); jieba
segments.

Each metric scores one sample (``scores`` of a row of ``generated_predictions.jsonl``) and aggregates
the samples' scores into the reported figures; every name either produces is in
``tunery.spec.eval_metrics.METRICS``. What a metric needs of the label alone (its jieba words, its
character n-grams) lives in a :class:`Reference`, which scoring workers prepare while the answers are
still being generated.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from tunery.evaluation.similarity import bleu4, reference_grams, rouge_f
from tunery.spec.eval_metrics import METRICS_BY_NAME
from tunery.spec.evaluation import PREDICT_METRICS


@dataclass(frozen=True)
class Sample:
    """What the metrics see of one prediction: texts with special tokens removed (as LF scores them)."""

    predict: str
    label: str
    #: tokens of the generated answer (its stop token not counted)
    predict_tokens: int


Scores = dict[str, float]


class Reference:
    """A label's parts the metrics compare answers with, each computed once when first asked for."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._words: list[str] | None = None
        self._grams: list[Counter[str]] | None = None

    def words(self) -> list[str]:
        """The label's jieba words."""
        if self._words is None:
            self._words = list(_jieba().cut(self.label))
        return self._words

    def grams(self) -> list[Counter[str]]:
        """The label's character 1- to 4-gram counts."""
        if self._grams is None:
            self._grams = reference_grams(self.label)
        return self._grams


def _mean(values: Sequence[float]) -> float:
    """numpy's mean (pairwise summation), as LF takes it: the same figure to the last bit."""
    return float(np.mean(np.asarray(values, dtype=np.float64))) if len(values) else 0.0


def mean_of(names: Sequence[str]) -> Callable[[Sequence[Scores]], Scores]:
    def aggregate(samples: Sequence[Scores]) -> Scores:
        return {name: _mean([float(sample[name]) for sample in samples]) for name in names}

    return aggregate


@dataclass(frozen=True)
class PredictMetric:
    """One entry of :data:`PREDICT_METRIC_REGISTRY`: ``eval_metrics`` selects it by ``name``."""

    name: str
    #: names of the per-sample scores it writes
    sample_names: tuple[str, ...]
    #: names of the figures it reports (predict_results.json without the ``predict_`` prefix)
    reported: tuple[str, ...]
    score: Callable[[Sample, Reference], Scores]
    aggregate: Callable[[Sequence[Scores]], Scores]
    #: the work on the label alone, done ahead of the answers
    prepare: Callable[[Reference], object] | None = None


# ---- LLaMA-Factory's similarity scores ---------------------------------------------------------------


@cache
def _jieba() -> Any:
    import jieba  # type: ignore[import-untyped]

    jieba.setLogLevel(logging.WARNING)  # it logs its dictionary loading at INFO
    return jieba


ROUGE_NAMES = ("rouge-1", "rouge-2", "rouge-l")


def rouge_scores(predict: str, label: str | Reference) -> Scores:
    """ROUGE-1/2/L F1 x 100 (rounded to 4 places) over jieba words, as LF's ``ComputeSimilarity``."""
    hypothesis = list(_jieba().cut(predict))
    reference = (label if isinstance(label, Reference) else Reference(label)).words()
    if len(" ".join(hypothesis).split()) == 0 or len(" ".join(reference).split()) == 0:
        return dict.fromkeys(ROUGE_NAMES, 0.0)
    result = rouge_f(" ".join(hypothesis), " ".join(reference))
    return {name: float(round(result[name] * 100, 4)) for name in ROUGE_NAMES}


def bleu_score(predict: str, label: str | Reference) -> Scores:
    """Sentence BLEU-4 over characters with nltk's smoothing method 3, x 100 rounded to 4 places (LF)."""
    reference = label if isinstance(label, Reference) else Reference(label)
    return {"bleu-4": float(round(bleu4(predict, reference.label, reference.grams()) * 100, 4))}


def exact_match(sample: Sample, reference: Reference) -> Scores:
    """100 when the answer equals the label once leading/trailing whitespace is trimmed, else 0."""
    return {"exact_match": 100.0 if sample.predict.strip() == sample.label.strip() else 0.0}


def _length_aggregate(samples: Sequence[Scores]) -> Scores:
    lengths = [float(sample["length"]) for sample in samples]
    return {"length_mean": _mean(lengths), "length_max": max(lengths, default=0.0)}


PREDICT_METRIC_REGISTRY: dict[str, PredictMetric] = {
    metric.name: metric
    for metric in (
        PredictMetric(
            "bleu",
            ("bleu-4",),
            ("bleu-4",),
            lambda s, r: bleu_score(s.predict, r),
            mean_of(("bleu-4",)),
            Reference.grams,
        ),
        PredictMetric(
            "rouge",
            ROUGE_NAMES,
            ROUGE_NAMES,
            lambda s, r: rouge_scores(s.predict, r),
            mean_of(ROUGE_NAMES),
            Reference.words,
        ),
        PredictMetric("exact_match", ("exact_match",), ("exact_match",), exact_match, mean_of(("exact_match",))),
        PredictMetric(
            "length",
            ("length",),
            ("length_mean", "length_max"),
            lambda s, r: {"length": float(s.predict_tokens)},
            _length_aggregate,
        ),
    )
}

if tuple(PREDICT_METRIC_REGISTRY) != PREDICT_METRICS:  # pragma: no cover - a developer error
    raise RuntimeError("the prediction metric registry must hold exactly tunery.spec.evaluation.PREDICT_METRICS")
_unknown = {
    name for metric in PREDICT_METRIC_REGISTRY.values() for name in (*metric.sample_names, *metric.reported)
} - set(METRICS_BY_NAME)
if _unknown:  # pragma: no cover - a developer error
    raise RuntimeError(f"metric names missing from tunery.spec.eval_metrics.METRICS: {sorted(_unknown)}")


def chosen_metrics(names: Sequence[str]) -> list[PredictMetric]:
    return [PREDICT_METRIC_REGISTRY[name] for name in PREDICT_METRICS if name in names]


def prepare(reference: Reference, names: Sequence[str]) -> Reference:
    """Do the label-only work of the metrics ``names`` now."""
    for metric in chosen_metrics(names):
        if metric.prepare is not None:
            metric.prepare(reference)
    return reference


def score_each(
    samples: Sequence[Sample], names: Sequence[str], references: Sequence[Reference | None] | None = None
) -> list[Scores]:
    """Per-sample scores of the metrics ``names``; ``references``: prepared labels, by sample (or None)."""
    chosen = chosen_metrics(names)
    per_sample: list[Scores] = []
    for position, sample in enumerate(samples):
        reference = references[position] if references is not None else None
        if reference is None or reference.label != sample.label:
            reference = Reference(sample.label)
        scores: Scores = {}
        for metric in chosen:
            scores.update(metric.score(sample, reference))
        per_sample.append(scores)
    return per_sample


def aggregate(per_sample: Sequence[Scores], names: Sequence[str]) -> Scores:
    """The reported figures of the metrics ``names`` from every sample's scores."""
    figures: Scores = {}
    for metric in chosen_metrics(names):
        figures.update(metric.aggregate([{k: s[k] for k in metric.sample_names} for s in per_sample]))
    return figures


def score_samples(samples: Sequence[Sample], names: Sequence[str]) -> tuple[list[Scores], Scores]:
    """(per-sample scores, aggregated figures) for the metrics ``names`` (in registry order)."""
    per_sample = score_each(samples, names)
    return per_sample, aggregate(per_sample, names)
