"""build_training_data end to end on the demo datasets: SFT, packing, pretraining, eval, streaming."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from tests.engine.tokenize_support import load_tokenizer, trained_spans
from tunery.engine.data.load import load_examples
from tunery.engine.templates import get_template
from tunery.engine.tokenize import (
    IGNORE_INDEX,
    PackedCollator,
    PaddingCollator,
    TokenizedDataset,
    build_training_data,
)
from tunery.engine.tokenize.errors import TokenizeError
from tunery.spec import JobSpec


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


def make_spec(model: Path, data_dir: Path, **keys: Any) -> JobSpec:
    values: dict[str, Any] = {
        "model_name_or_path": str(model),
        "dataset": "alpaca_en_demo",
        "dataset_dir": str(data_dir),
        "template": "chatml",
        "cutoff_len": 256,
        "max_samples": 120,
    }
    values.update(keys)
    return JobSpec.from_mapping(values)


def _items(dataset: Any) -> list[dict[str, list[int]]]:
    return [dataset[i] for i in range(len(dataset))] if not isinstance(dataset, IterableDataset) else list(dataset)


def test_sft_rows_collator_and_stats(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, cutoff_len=96)
    data = build_training_data(spec, tokenizer, get_template("chatml", tokenizer), None)
    assert isinstance(data.train_dataset, TokenizedDataset)
    assert data.eval_dataset is None and data.from_cache is False and data.cache_path is None
    items = _items(data.train_dataset)
    assert len(items) == 120
    for item in items:
        assert set(item) == {"input_ids", "attention_mask", "labels"}
        assert len(item["input_ids"]) == len(item["labels"]) == len(item["attention_mask"]) <= 96
        assert item["labels"][0] == IGNORE_INDEX and any(label != IGNORE_INDEX for label in item["labels"])

    assert isinstance(data.collator, PaddingCollator) and data.collator.pad_to_multiple_of == 8
    batch = data.collator(items[:4])
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"].dtype == torch.long

    stats = data.stats
    assert stats is not None
    lengths = [len(item["input_ids"]) for item in items]
    assert (stats.examples, stats.rows, stats.tokens) == (120, 120, sum(lengths))
    assert stats.lengths.max == max(lengths) and stats.lengths.min == min(lengths)
    assert sum(count for _, count in stats.histogram) == 120
    assert stats.histogram[-1][0] == 96
    whole = build_training_data(make_spec(tiny_llama, demo_data_dir, cutoff_len=100_000), tokenizer,
                                get_template("chatml", tokenizer), None)  # fmt: skip
    full_lengths = [len(item["input_ids"]) for item in _items(whole.train_dataset)]
    assert 0 < stats.truncated == sum(1 for n in full_lengths if n > 96)
    assert stats.trained_tokens == sum(1 for i in items for lab in i["labels"] if lab != IGNORE_INDEX)
    assert data.report is not None and data.report.rows_valid >= 120


def test_sft_rows_decode_to_the_dataset_answers(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, cutoff_len=4096, max_samples=10)
    template = get_template("chatml", tokenizer)
    data = build_training_data(spec, tokenizer, template, None)
    loaded = load_examples(spec.data, "sft", spec.training.seed)
    for example, item in zip(loaded.train, _items(data.train_dataset), strict=True):
        spans = trained_spans(item["input_ids"], item["labels"])
        assert [tokenizer.decode(span) for span in spans] == [example.response[0].content + "<|im_end|>\n"]


def test_tool_dataset_through_the_loader(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, dataset="glaive_toolcall_en_demo", template="qwen", cutoff_len=4096,
                     max_samples=30)  # fmt: skip
    template = get_template("qwen", tokenizer)
    data = build_training_data(spec, tokenizer, template, None)
    loaded = load_examples(spec.data, "sft", spec.training.seed)
    all_spans = []
    for example, item in zip(loaded.train, _items(data.train_dataset), strict=True):
        pairs = template.render_turns(example.messages, example.system, example.tools)
        spans = [tokenizer.decode(s) for s in trained_spans(item["input_ids"], item["labels"])]
        assert spans == [response for _, response in pairs]
        all_spans += spans
    assert any(span.startswith("<tool_call>") for span in all_spans)  # tool calls are trained


def test_neat_packing_rows(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, neat_packing=True, cutoff_len=512)
    template = get_template("chatml", tokenizer)
    plain = build_training_data(make_spec(tiny_llama, demo_data_dir, cutoff_len=511), tokenizer, template, None)
    data = build_training_data(spec, tokenizer, template, None)
    assert isinstance(data.collator, PackedCollator) and not data.collator.flatten
    items = _items(data.train_dataset)
    assert len(items) < len(plain.train_dataset)  # type: ignore[arg-type]
    sequences = []
    for item in items:
        assert len(item["input_ids"]) <= 511 and "position_ids" in item  # cutoff_len - 1, as LF
        starts = [i for i, p in enumerate(item["position_ids"]) if p == 0] + [len(item["input_ids"])]
        sequences += [tuple(item["input_ids"][a:b]) for a, b in pairwise(starts)]
    assert sorted(sequences) == sorted(tuple(i["input_ids"]) for i in _items(plain.train_dataset))
    assert data.stats is not None and data.stats.examples == 120 and data.stats.rows == len(items)
    fa2 = build_training_data(make_spec(tiny_llama, demo_data_dir, neat_packing=True, flash_attn="fa2"),
                              tokenizer, template, None)  # fmt: skip
    assert isinstance(fa2.collator, PackedCollator) and fa2.collator.flatten


def test_packing_without_neat_keeps_attention_across_sequences(
    tiny_llama: Path, demo_data_dir: Path, tokenizer: Any
) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, packing=True, cutoff_len=512)
    data = build_training_data(spec, tokenizer, get_template("chatml", tokenizer), None)
    assert isinstance(data.collator, PaddingCollator)
    batch = data.collator(_items(data.train_dataset)[:2])
    assert "position_ids" in batch and "attention_mask" in batch  # a plain mask: LF's non-neat packing


def test_pretraining_blocks(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, stage="pt", dataset="c4_demo", template=None, cutoff_len=64,
                     max_samples=50)  # fmt: skip
    data = build_training_data(spec, tokenizer, None, None)
    items = _items(data.train_dataset)
    assert items and all(len(i["input_ids"]) == 64 and i["labels"] == i["input_ids"] for i in items)
    assert data.stats is not None and data.stats.examples == 50 and data.stats.rows == len(items)
    eos_count = sum(i["input_ids"].count(tokenizer.eos_token_id) for i in items)
    assert 40 <= eos_count <= 50  # one eos per document, the tail of the stream is dropped

    unpacked = build_training_data(
        make_spec(tiny_llama, demo_data_dir, stage="pt", dataset="c4_demo", template=None, cutoff_len=64,
                  max_samples=50, packing=False), tokenizer, None, None)  # fmt: skip
    assert len(unpacked.train_dataset) == 50  # type: ignore[arg-type]


def test_validation_split(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, val_size=0.1)
    data = build_training_data(spec, tokenizer, get_template("chatml", tokenizer), None)
    assert isinstance(data.eval_dataset, TokenizedDataset)
    assert len(data.eval_dataset) == 12 and len(data.train_dataset) == 108  # type: ignore[arg-type]
    assert data.eval_stats is not None


def test_streaming_yields_the_same_rows(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    listed = build_training_data(make_spec(tiny_llama, demo_data_dir), tokenizer, template, None)
    spec = make_spec(tiny_llama, demo_data_dir, streaming=True, max_steps=5, preprocessing_batch_size=16)
    streamed = build_training_data(spec, tokenizer, template, None)
    assert isinstance(streamed.train_dataset, IterableDataset) and streamed.stats is None
    rows = _items(streamed.train_dataset)
    assert sorted(tuple(r["input_ids"]) for r in rows) == sorted(
        tuple(r["input_ids"]) for r in _items(listed.train_dataset)
    )
    assert _items(streamed.train_dataset) == rows  # iterable again (next epoch), same order
    batches = list(DataLoader(streamed.train_dataset, batch_size=8, collate_fn=streamed.collator))
    assert sum(b["input_ids"].shape[0] for b in batches) == 120

    packed_spec = make_spec(tiny_llama, demo_data_dir, streaming=True, max_steps=5, neat_packing=True,
                            preprocessing_batch_size=40, cutoff_len=512)  # fmt: skip
    packed = build_training_data(packed_spec, tokenizer, template, None)
    packed_rows = _items(packed.train_dataset)
    assert all("position_ids" in r and len(r["input_ids"]) <= 512 for r in packed_rows)
    assert sum(r["position_ids"].count(0) for r in packed_rows) == 120


def test_one_eval_set_per_dataset(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, eval_dataset="alpaca_en_demo,identity", eval_on_each_dataset=True,
                     max_samples=20)  # fmt: skip
    template = get_template("chatml", tokenizer)
    data = build_training_data(spec, tokenizer, template, tmp_path)
    assert isinstance(data.eval_dataset, dict) and sorted(data.eval_dataset) == ["alpaca_en_demo", "identity"]
    assert all(len(ds) == 20 for ds in data.eval_dataset.values())  # type: ignore[arg-type]
    assert isinstance(data.eval_stats, dict) and data.eval_stats["identity"].examples == 20
    again = build_training_data(spec, tokenizer, template, tmp_path)
    assert again.from_cache and isinstance(again.eval_dataset, dict)
    assert again.eval_dataset["identity"][0] == data.eval_dataset["identity"][0]


def test_too_little_text_for_one_block_is_a_clear_error(
    tiny_llama: Path, demo_data_dir: Path, tokenizer: Any
) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, stage="pt", dataset="c4_demo", template=None, cutoff_len=100_000,
                     max_samples=2)  # fmt: skip
    with pytest.raises(TokenizeError, match="fewer tokens than one block of cutoff_len=100000") as info:
        build_training_data(spec, tokenizer, None, None)
    assert info.value.code == "invalid_data"
