"""Mixing datasets, validation splits, streaming and the content fingerprint."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import datasets
import pytest

from tests.engine.data_support import jsonl, load, section, write_dataset_dir
from tunery.engine.data.api import DataError
from tunery.engine.data.load import data_fingerprint
from tunery.engine.data.mixing import interleave, split_validation
from tunery.engine.data.types import Example

SIZES = {"a": 3, "b": 5, "c": 8}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    info = {name: {"file_name": f"{name}.jsonl"} for name in SIZES}
    files = {
        f"{name}.jsonl": jsonl([{"instruction": f"{name}{i}", "output": "x"} for i in range(size)])
        for name, size in SIZES.items()
    }
    return write_dataset_dir(tmp_path, info, files)


def _ids(examples: Iterable[Example]) -> list[str]:
    return [e.prompt[0].content for e in examples]


def _oracle(strategy: str, probs: list[float] | None, seed: int) -> list[str]:
    """What datasets.interleave_datasets gives for the same sources."""
    sources = [datasets.Dataset.from_dict({"id": [f"{n}{i}" for i in range(s)]}) for n, s in SIZES.items()]
    mixed = datasets.interleave_datasets(sources, probabilities=probs, seed=seed, stopping_strategy=strategy)
    return list(mixed["id"])


def test_concat_keeps_dataset_order(root: Path) -> None:
    assert _ids(load(root, "a,b,c").train) == [f"a{i}" for i in range(3)] + [f"b{i}" for i in range(5)] + [
        f"c{i}" for i in range(8)
    ]


def test_interleave_without_probabilities(root: Path) -> None:
    under = _ids(load(root, "a,b,c", mix_strategy="interleave_under").train)
    assert under[:6] == ["a0", "b0", "c0", "a1", "b1", "c1"] and len(under) == 3 * 3
    over = _ids(load(root, "a,b,c", mix_strategy="interleave_over").train)
    assert len(over) == 8 * 3 and Counter(x[0] for x in over) == {"a": 8, "b": 8, "c": 8}
    assert over == _oracle("all_exhausted", None, 0) and under == _oracle("first_exhausted", None, 0)


@pytest.mark.parametrize("strategy", ["interleave_under", "interleave_over"])
@pytest.mark.parametrize("seed", [0, 42])
def test_interleave_with_probabilities_matches_datasets(root: Path, strategy: str, seed: int) -> None:
    probs = [0.2, 0.3, 0.5]
    mixed = _ids(load(root, "a,b,c", seed=seed, mix_strategy=strategy, interleave_probs=probs).train)
    stopping = "first_exhausted" if strategy == "interleave_under" else "all_exhausted"
    assert mixed == _oracle(stopping, probs, seed)
    counts = Counter(x[0] for x in mixed)
    if strategy == "interleave_over":  # every source used up at least once
        assert all(counts[name] >= size for name, size in SIZES.items())
    else:  # stops when the first source is used up
        assert any(counts[name] == size for name, size in SIZES.items())


def test_interleave_probability_proportions() -> None:
    sources = list(interleave([lambda: ["x"] * 10_000, lambda: ["y"] * 10_000], [0.8, 0.2], 3, "first_exhausted"))
    share = sources.count("x") / len(sources)
    assert len(sources) == 10_000 + sources.count("y") and 0.77 < share < 0.83


def test_val_size_fraction_and_count_match_train_test_split(root: Path) -> None:
    loaded = load(root, "c", val_size=0.25, seed=7)
    assert isinstance(loaded.eval, list)
    assert (len(loaded.train), len(loaded.eval)) == (8 - math.ceil(0.25 * 8), math.ceil(0.25 * 8))
    oracle = datasets.Dataset.from_dict({"id": [f"c{i}" for i in range(8)]}).train_test_split(test_size=0.25, seed=7)
    assert _ids(loaded.train) == oracle["train"]["id"] and _ids(loaded.eval) == oracle["test"]["id"]
    counted = load(root, "b,c", val_size=3, seed=7)
    assert isinstance(counted.eval, list) and (len(counted.train), len(counted.eval)) == (10, 3)
    assert set(_ids(counted.train)) | set(_ids(counted.eval)) == {f"b{i}" for i in range(5)} | {
        f"c{i}" for i in range(8)
    }
    with pytest.raises(DataError, match=r"val_size 8\.0 takes 8 of the 8 training examples"):
        load(root, "c", val_size=8)


def test_split_validation_is_seeded() -> None:
    items = list(range(100))
    assert split_validation(items, 0.1, 1) == split_validation(items, 0.1, 1)
    assert split_validation(items, 0.1, 1) != split_validation(items, 0.1, 2)


def test_eval_dataset_and_eval_on_each_dataset(root: Path) -> None:
    loaded = load(root, "c", eval_dataset="a,b")
    assert isinstance(loaded.eval, list) and _ids(loaded.eval) == [f"a{i}" for i in range(3)] + [
        f"b{i}" for i in range(5)
    ]
    each = load(root, "c", eval_dataset="a,b", eval_on_each_dataset=True)
    assert each.eval_by_dataset is not None and {k: len(list(v)) for k, v in each.eval_by_dataset.items()} == {
        "a": 3,
        "b": 5,
    }


def test_streaming_reads_lazily(root: Path) -> None:
    loaded = load(root, "a,b", streaming=True, buffer_size=1)
    assert not isinstance(loaded.train, list)
    assert loaded.report.rows_total == 0  # nothing read yet
    (root / "a.jsonl").write_text(jsonl([{"instruction": "late", "output": "x"}]), encoding="utf-8")
    assert _ids(loaded.train) == ["late"] + [f"b{i}" for i in range(5)]
    assert _ids(loaded.train) == ["late"] + [f"b{i}" for i in range(5)]  # can be read again (next epoch)
    assert (loaded.report.rows_total, loaded.report.rows_valid) == (6, 6)  # rows are counted once


def test_streaming_val_split_takes_the_first_rows(root: Path) -> None:
    loaded = load(root, "c", streaming=True, buffer_size=1, val_size=3)
    assert loaded.eval is not None and _ids(loaded.eval) == ["c0", "c1", "c2"]
    assert _ids(loaded.train) == [f"c{i}" for i in range(3, 8)]
    shuffled = load(root, "c", streaming=True, buffer_size=4, val_size=3, seed=1)
    assert shuffled.eval is not None and sorted(_ids(shuffled.eval) + _ids(shuffled.train)) == [
        f"c{i}" for i in range(8)
    ]
    with pytest.raises(DataError, match="whole number of rows when streaming"):
        load(root, "c", streaming=True, val_size=0.5)


def test_streaming_interleave_and_errors(root: Path, tmp_path: Path) -> None:
    probs = [0.2, 0.3, 0.5]
    streamed = load(
        root, "a,b,c", streaming=True, buffer_size=1, mix_strategy="interleave_over", interleave_probs=probs
    )
    listed = load(root, "a,b,c", mix_strategy="interleave_over", interleave_probs=probs)
    assert _ids(streamed.train) == _ids(listed.train)
    (root / "b.jsonl").write_text('{"instruction": "b0", "output": "x"}\nnot json\n', encoding="utf-8")
    bad = load(root, "b", streaming=True, buffer_size=1)
    assert _ids(bad.train) == ["b0"] and _ids(bad.train) == ["b0"]
    assert [(e.row, e.field) for e in bad.report.errors] == [(2, "(row)")]  # reported once over two passes
    (root / "b.jsonl").write_text("not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="dataset 'b' has no valid row"):
        list(load(root, "b", streaming=True).train)


def test_fingerprint_follows_content_and_options(root: Path) -> None:
    base = load(root, "a,b").fingerprint
    assert load(root, "a,b").fingerprint == base == data_fingerprint(section(root, "a,b"), "sft", 42)
    assert load(root, "a,b", seed=1).fingerprint == base  # the seed changes nothing here
    assert load(root, "a,b", val_size=0.5, seed=1).fingerprint != load(root, "a,b", val_size=0.5, seed=2).fingerprint
    assert load(root, "a,b", max_samples=2).fingerprint != base
    assert load(root, "b,a").fingerprint != base
    assert load(root, "a,b", stage="ppo").fingerprint != base
    path = root / "a.jsonl"
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"a1"', b'"a7"'))  # one byte changes
    changed = load(root, "a,b").fingerprint
    assert changed != base
    path.write_bytes(original)
    assert load(root, "a,b").fingerprint == base
    info = (root / "dataset_info.json").read_text()
    (root / "dataset_info.json").write_text(info.replace('"a.jsonl"}', '"a.jsonl", "columns": {"system": "s"}}'))
    assert load(root, "a,b").fingerprint != base
