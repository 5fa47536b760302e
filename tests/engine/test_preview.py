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
from tunery.engine.tokenize.preview import preview_data

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
    assert f"min {summary.min}  mean {summary.mean}  p50 {summary.p50}  p95 {summary.p95}  max {summary.max}" in text
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


def _stage_spec(model: Path, data_dir: Path, stage: str, dataset: str, **keys: Any) -> Any:
    extra: dict[str, Any] = {"kto": {"per_device_train_batch_size": 2}, "ppo": {"reward_model": str(model)}}
    return make_spec(model, data_dir, stage=stage, dataset=dataset, **extra.get(stage, {}), **keys)


def test_pair_preview_shows_both_sides(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = _stage_spec(tiny_llama, demo_data_dir, "dpo", "dpo_en_demo", cutoff_len=4096, max_samples=10)
    template = get_template("chatml", tokenizer)
    text = preview(spec, 2, tokenizer, template, color=False)
    example = load_examples(spec.data, "dpo", spec.training.seed).train[0]  # type: ignore[index]
    block = text.split("=== Example ")[1]
    assert block.startswith("1 (") and "dpo_en_demo.json, row 1): prompt " in block
    masked, chosen, rejected = MARKED.findall(block)
    assert masked == ("masked", template.render_prompt(example.prompt, example.system))
    assert chosen == ("trained", example.response[0].content + "<|im_end|>\n")
    assert rejected == ("trained", example.response[1].content + "<|im_end|>\n")
    assert block.index("--- chosen ---") < block.index("--- rejected ---")
    assert "rows: 10" in text and "truncated by cutoff_len=4096: 0 of 10 rows" in text

    lines = preview(spec, 3, tokenizer, template, format="jsonl").splitlines()
    data = build_training_data(spec, tokenizer, template, None)
    assert [json.loads(line) for line in lines] == [data.train_dataset[i] for i in range(3)]  # type: ignore[index]


def test_pair_preview_json(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = _stage_spec(tiny_llama, demo_data_dir, "rm", "dpo_en_demo", cutoff_len=64, max_samples=10)
    template = get_template("chatml", tokenizer)
    result = preview_data(spec, 2, tokenizer, template)
    first = result["examples"][0]
    row = build_training_data(spec, tokenizer, template, None).train_dataset[0]  # type: ignore[index]
    decode = tokenizer.decode
    assert first["prompt"] == {"tokens": len(row["prompt_ids"]), "text": decode(row["prompt_ids"])}
    assert first["chosen"] == {"tokens": len(row["chosen_ids"]), "text": decode(row["chosen_ids"])}
    assert first["rejected"] == {"tokens": len(row["rejected_ids"]), "text": decode(row["rejected_ids"])}
    assert first["spans"] == [
        {"trained": False, "text": first["prompt"]["text"]},
        {"trained": True, "text": first["chosen"]["text"]},
    ]
    assert first["tokens"] == len(row["prompt_ids"]) + len(row["chosen_ids"]) + len(row["rejected_ids"])
    assert first["trained_tokens"] == len(row["chosen_ids"]) + len(row["rejected_ids"])
    assert first["truncated_from"] > 64 and (first["file"].endswith("dpo_en_demo.json"), first["row"]) == (True, 1)
    stats = result["stats"]
    assert (stats["kind"], stats["examples"], stats["truncated"], stats["dropped"]) == ("pairwise", 10, 10, 0)
    assert sum(count for _, count in stats["histogram"]) == 10
    json.dumps(result)  # plain JSON values only


def test_kto_and_prompt_previews(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    kto = _stage_spec(tiny_llama, demo_data_dir, "kto", "kto_en_demo", max_samples=10)
    text = preview(kto, 2, tokenizer, template, color=False)
    raw = json.loads((demo_data_dir / "kto_en_demo.json").read_text())[:10]
    first_label = "desirable" if raw[0]["label"] else "undesirable"
    assert f"label: {first_label}" in text.split("=== Example 2")[0]
    desirable = sum(1 for row in raw if row["label"])
    assert f"labels: {desirable} desirable, {10 - desirable} undesirable" in text
    result = preview_data(kto, 1, tokenizer, template)
    assert result["examples"][0]["label"] is raw[0]["label"] and "completion" in result["examples"][0]
    assert (result["stats"]["desirable"], result["stats"]["undesirable"]) == (desirable, 10 - desirable)

    ppo = _stage_spec(tiny_llama, demo_data_dir, "ppo", "alpaca_en_demo", max_samples=10)
    text = preview(ppo, 1, tokenizer, template, color=False)
    answer = json.loads((demo_data_dir / "alpaca_en_demo.json").read_text())[0]["output"]
    assert f"--- reference ---\n{answer}\n" in text and "with a reference answer: 10 of 10 rows" in text
    (masked,) = MARKED.findall(text.split("--- reference ---")[0])
    assert masked[0] == "masked" and masked[1].endswith("<|im_start|>assistant\n")
    example = preview_data(ppo, 1, tokenizer, template)["examples"][0]
    assert example["reference"] == answer and example["trained_tokens"] == 0
    assert example["spans"] == [{"trained": False, "text": example["prompt"]["text"]}]


def test_sft_preview_json_keeps_its_shape(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, cutoff_len=64, max_samples=10)
    result = preview_data(spec, 2, tokenizer, get_template("chatml", tokenizer))
    assert set(result) == {"examples", "stats"}
    assert set(result["examples"][0]) == {"file", "row", "tokens", "trained_tokens", "truncated_from", "spans"}
    assert set(result["stats"]) == {
        "examples", "sampled", "tokens", "trained_tokens", "truncated", "cutoff_len", "lengths", "histogram",
    }  # fmt: skip
