"""preview: trained and masked spans made visible, token-length statistics, JSON lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_tokenize_pipeline import make_spec
from tests.engine.tokenize_support import load_tokenizer
from tunery.engine.data.load import load_examples
from tunery.engine.templates import get_template
from tunery.engine.tokenize import IGNORE_INDEX, build_training_data, preview

MARKED = re.compile(r"\[\[(trained|masked)\]\](.*?)\[\[/\1\]\]", re.DOTALL)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


def test_markers_show_trained_and_masked_spans(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, cutoff_len=4096, max_samples=20)
    template = get_template("chatml", tokenizer)
    text = preview(spec, 3, tokenizer, template, color=False)
    examples = list(load_examples(spec.data, "sft", spec.training.seed).train)

    blocks = text.split("=== Example ")[1:]
    assert len(blocks) == 3
    for example, block in zip(examples, blocks, strict=False):
        spans = MARKED.findall(block)
        kinds = [kind for kind, _ in spans]
        assert kinds == ["masked", "trained"]
        prompt, response = template.render_turns(example.messages, example.system)[0]
        assert spans[0][1] == prompt and spans[1][1] == response
        assert "alpaca_en_demo.json, row" in block.splitlines()[0]
    assert "\033[" not in text


def test_colour_mode_uses_ansi(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, max_samples=5)
    text = preview(spec, 1, tokenizer, get_template("chatml", tokenizer), color=True)
    assert "\033[1;32m" in text and "\033[2;37m" in text and "[[trained]]" not in text


def test_statistics_and_truncation(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, cutoff_len=64, max_samples=100)
    template = get_template("chatml", tokenizer)
    text = preview(spec, 100, tokenizer, template, color=False)
    data = build_training_data(spec, tokenizer, template, None)
    stats = data.stats
    assert stats is not None and stats.truncated > 0
    assert f"truncated by cutoff_len=64: {stats.truncated} of 100 rows" in text
    summary = stats.lengths
    assert (
        f"min {summary.min}  mean {summary.mean}  p50 {summary.p50}  p95 {summary.p95}  max {summary.max}" in text
    )
    assert text.count(", truncated from ") == stats.truncated  # each cut example says so in its header


def test_jsonl_gives_ids_and_labels(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, max_samples=20)
    template = get_template("chatml", tokenizer)
    lines = preview(spec, 4, tokenizer, template, format="jsonl").splitlines()
    data = build_training_data(spec, tokenizer, template, None)
    assert len(lines) == 4
    for number, line in enumerate(lines):
        row = json.loads(line)
        assert set(row) == {"input_ids", "labels"}
        expected = data.train_dataset[number]  # type: ignore[index]
        assert row["input_ids"] == expected["input_ids"] and row["labels"] == expected["labels"]
        assert IGNORE_INDEX in row["labels"]


def test_packing_and_pretraining_are_summarised(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    packed = make_spec(tiny_llama, demo_data_dir, neat_packing=True, cutoff_len=512, max_samples=30)
    text = preview(packed, 1, tokenizer, get_template("chatml", tokenizer), color=False)
    assert re.search(r"packing: 30 sequences into \d+ rows of <= 511 tokens \(neat\)", text)

    pt = make_spec(tiny_llama, demo_data_dir, stage="pt", dataset="c4_demo", template=None, cutoff_len=128,
                   max_samples=20)  # fmt: skip
    text = preview(pt, 2, tokenizer, None, color=False)
    assert text.count("=== Example ") == 2
    assert "[[masked]]" not in text.split("=== Token statistics")[0]  # every pretraining token is trained
    assert re.search(r"packing: documents concatenated into \d+ blocks of 128 tokens", text)
