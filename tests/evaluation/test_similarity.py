"""Tunery's BLEU-4 / ROUGE arithmetic equals nltk's ``sentence_bleu`` (smoothing method 3) and
``rouge_chinese`` — the calls LLaMA-Factory makes — float for float, on pairs built from the demo data
(English, Chinese, prefixes, shuffles, identical and empty texts) and on edge cases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tunery.evaluation.metrics import _jieba
from tunery.evaluation.similarity import bleu4, lcs_length, rouge_f

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
rouge_chinese = pytest.importorskip("rouge_chinese")

EDGES = [
    ("", "x"), ("x", ""), ("   ", "a b"), ("!!!", "hello"), ("a", "a"), ("ab", "ba"), ("？？", "。。"),
    ("......ab", "......cd"), ("……x", "……y"), ("你好。”他说", "你好。”她说"), ("a\n\nb", "a b"), ("1 2 3", "1 2 3 4"),
]  # fmt: skip


def _pairs(demo_data_dir: Path, count: int) -> list[tuple[str, str]]:
    texts = []
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json"):
        for row in json.loads((demo_data_dir / name).read_text(encoding="utf-8")):
            texts += [row["output"], row["instruction"]]
    rng = random.Random(0)
    pairs = []
    for _ in range(count):
        label, other = rng.choice(texts), rng.choice(texts)
        kind = rng.random()
        if kind < 0.3:
            predict = label[: rng.randint(0, len(label))] + other[:20]
        elif kind < 0.4:
            predict = label
        elif kind < 0.5:
            predict = "".join(rng.sample(label, len(label)))
        else:
            predict = other
        pairs.append((predict, label))
    return pairs + EDGES


def test_bleu_equals_nltk(demo_data_dir: Path) -> None:
    smoothing = nltk_bleu.SmoothingFunction().method3
    for predict, label in _pairs(demo_data_dir, 1500):
        expected = nltk_bleu.sentence_bleu([list(label)], list(predict), smoothing_function=smoothing)
        assert bleu4(predict, label) == expected, (predict, label)


def test_rouge_equals_rouge_chinese(demo_data_dir: Path) -> None:
    jieba, rouge = _jieba(), rouge_chinese.Rouge()
    checked = 0
    for predict, label in _pairs(demo_data_dir, 400):
        hypothesis, reference = " ".join(jieba.cut(predict)), " ".join(jieba.cut(label))
        try:
            expected = rouge.get_scores(hypothesis, reference)[0]
        except ValueError:
            with pytest.raises(ValueError):
                rouge_f(hypothesis, reference)
            continue
        names = ("rouge-1", "rouge-2", "rouge-l")
        assert rouge_f(hypothesis, reference) == {name: expected[name]["f"] for name in names}
        checked += 1
    assert checked > 350


def test_lcs_length_equals_the_table() -> None:
    rng = random.Random(1)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                same = a[i - 1] == b[j - 1]
                table[i][j] = table[i - 1][j - 1] + 1 if same else max(table[i - 1][j], table[i][j - 1])
        assert lcs_length(a, b) == table[len(a)][len(b)]
