"""The metrics evaluation reports, torch-free: engine, API and dashboard read names and directions from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    title: str
    #: which way is better (the dashboard highlights the best run by it); None: neither (a length)
    higher_is_better: bool | None
    #: bleu-4, rouge-*: 0-100 as LLaMA-Factory reports them; accuracy and rates: percent; scores: the judge's scale
    unit: str
    summary: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("bleu-4", "BLEU-4", True, "0-100", "4-gram BLEU per sample (LF's smoothing), averaged"),
    MetricInfo("rouge-1", "ROUGE-1", True, "0-100", "unigram F1 per sample (jieba words for Chinese), averaged"),
    MetricInfo("rouge-2", "ROUGE-2", True, "0-100", "bigram F1 per sample, averaged"),
    MetricInfo("rouge-l", "ROUGE-L", True, "0-100", "longest-common-subsequence F1 per sample, averaged"),
    MetricInfo("exact_match", "Exact match", True, "%", "answers equal to the label (whitespace trimmed)"),
    MetricInfo("length_mean", "Mean length", None, "tokens", "tokens per answer, averaged"),
    MetricInfo("length_max", "Longest answer", None, "tokens", "tokens of the longest answer"),
    MetricInfo("length", "Length", None, "tokens", "tokens of one answer (a sample's score; length_mean averages it)"),
    MetricInfo("accuracy", "Accuracy", True, "%", "benchmark questions answered right"),
    MetricInfo("judge_score", "Judge score", True, "1-10", "the judge's score per answer, averaged"),
    MetricInfo("judge_failures", "Judge failures", False, "count", "answers the judge gave no usable score for"),
    MetricInfo("win_rate_a", "Wins of A", True, "%", "pairwise: prompts where the judge prefers A"),
    MetricInfo("win_rate_b", "Wins of B", True, "%", "pairwise: prompts where the judge prefers B"),
    MetricInfo("tie_rate", "Ties", False, "%", "pairwise: prompts judged a tie"),
    MetricInfo("samples_per_second", "Samples/s", True, "1/s", "rows evaluated per second"),
)
METRICS_BY_NAME: dict[str, MetricInfo] = {metric.name: metric for metric in METRICS}
