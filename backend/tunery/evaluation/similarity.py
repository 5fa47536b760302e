"""BLEU-4 and ROUGE-1/2/L of one answer, the same float for float as LLaMA-Factory's calls compute them
(nltk's ``sentence_bleu`` with ``SmoothingFunction().method3``; ``rouge_chinese.Rouge().get_scores``), in a
fraction of the time. Why by hand: with those calls scoring an answer costs ~5x more (2.0 s vs 0.4 s per 500
answers here) and, with vLLM generating, scoring is what predict's rows/s waits for; the libraries stay the
tests' oracle.

Both libraries are pure Python written for generality: nltk builds ``Fraction`` objects and tuple n-grams
for every order, rouge_chinese fills a dictionary-keyed O(n·m) table for the longest common subsequence.
Here the same quantities come from the same arithmetic, in the same order (so the same rounding): n-gram
counts over string slices, the LCS length by Hyyrö's bit-parallel algorithm (an exact integer).
``tests/evaluation/test_similarity.py`` checks equality with both libraries on thousands of pairs.
"""

from __future__ import annotations

import math
import re
from collections import Counter

WEIGHT = 0.25  # sentence_bleu's default weights: (0.25, 0.25, 0.25, 0.25)


def reference_grams(label: str) -> list[Counter[str]]:
    """The label's character 1- to 4-gram counts (what BLEU compares an answer with)."""
    return [Counter(label[i : i + n] for i in range(len(label) - n + 1)) for n in range(1, 5)]


def bleu4(predict: str, label: str, grams: list[Counter[str]] | None = None) -> float:
    """``sentence_bleu([list(label)], list(predict), smoothing_function=SmoothingFunction().method3)``;
    ``grams``: :func:`reference_grams` of ``label`` when already counted."""
    hyp_len, ref_len = len(predict), len(label)
    references = grams if grams is not None else reference_grams(label)
    precisions: list[tuple[int, int]] = []
    for n in range(1, 5):
        if hyp_len < n:
            precisions.append((0, 1))  # no n-gram: nltk's denominator is max(1, 0)
            continue
        counts = Counter(predict[i : i + n] for i in range(hyp_len - n + 1))
        reference = references[n - 1]
        clipped = sum(min(count, reference[gram]) for gram, count in counts.items())
        precisions.append((clipped, hyp_len - n + 1))
    if precisions[0][0] == 0:
        return 0.0
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    logs = []
    smoothing = 1  # method3: the k-th order without a match counts 1 / (2**k * denominator)
    for numerator, denominator in precisions:
        if numerator == 0:
            value = 1 / (2**smoothing * denominator)
            smoothing += 1
        else:
            value = numerator / denominator
        logs.append(WEIGHT * math.log(value))
    return brevity * math.exp(math.fsum(logs))


def _sentences(text: str) -> list[str]:
    """rouge_chinese's ``cut_sent`` and its per-sentence whitespace clean-up (empty pieces dropped first)."""
    text = re.sub("([。！？\\?])([^”’])", r"\1\n\2", text)
    text = re.sub("(\\.{6})([^”’])", r"\1\n\2", text)
    text = re.sub("(\\…{2})([^”’])", r"\1\n\2", text)
    text = re.sub("([。！？\\?][”’])([^，。！？\\?])", r"\1\n\2", text)
    return [" ".join(piece.split()) for piece in text.rstrip().split("\n") if len(piece) > 0]


def _words(sentences: list[str]) -> list[str]:
    return [word for sentence in sentences for word in sentence.split(" ")]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (Hyyrö's bit-vector algorithm over Python integers)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for position, word in enumerate(a):
        masks[word] = masks.get(word, 0) | (1 << position)
    full = (1 << len(a)) - 1
    vector = full
    for word in b:
        matches = vector & masks.get(word, 0)
        vector = ((vector + matches) | (vector - matches)) & full
    return len(a) - bin(vector).count("1")


def _f1(overlap: int, evaluated: int, reference: int) -> float:
    precision = 0.0 if evaluated == 0 else overlap / evaluated
    recall = 0.0 if reference == 0 else overlap / reference
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))


def rouge_f(hypothesis: str, reference: str) -> dict[str, float]:
    """``Rouge().get_scores(hypothesis, reference)[0][name]["f"]`` for rouge-1, rouge-2 and rouge-l
    (ValueError for an empty side, as rouge_chinese raises)."""
    hyp, ref = _sentences(hypothesis), _sentences(reference)
    if not hyp or not ref:
        raise ValueError("Hypothesis is empty." if not hyp else "Reference is empty.")
    hyp_words, ref_words = _words(hyp), _words(ref)
    scores = {}
    for n in (1, 2):
        hyp_grams = {tuple(hyp_words[i : i + n]) for i in range(len(hyp_words) - n + 1)}
        ref_grams = {tuple(ref_words[i : i + n]) for i in range(len(ref_words) - n + 1)}
        scores[f"rouge-{n}"] = _f1(len(hyp_grams & ref_grams), len(hyp_grams), len(ref_grams))
    common = lcs_length(ref_words, hyp_words)
    recall, precision = common / len(ref_words), common / len(hyp_words)
    scores["rouge-l"] = 2.0 * ((precision * recall) / (precision + recall + 1e-8))
    return scores
