"""The tokenized cache: reused across builds, invalidated by any input that changes the rows."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_tokenize_pipeline import make_spec
from tests.engine.tokenize_support import load_tokenizer
from tunery.engine.templates import get_template
from tunery.engine.tokenize import TrainingData, build_training_data, npyfile, supervised
from tunery.engine.tokenize.cache import TokenCache
from tunery.engine.tokenize.text import TokenPool, encode_pool


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Number of texts sent to the tokenizer, one entry per call."""
    counted: list[int] = []

    def counting(tokenizer: Any, texts: Any) -> TokenPool:
        counted.append(len(texts))
        return encode_pool(tokenizer, texts)

    monkeypatch.setattr(supervised, "encode_pool", counting)
    return counted


@pytest.fixture
def build(tiny_llama: Path, demo_data_dir: Path, tmp_path: Path) -> Callable[..., TrainingData]:
    """Build with a freshly loaded tokenizer and template each time (as a new job would)."""

    def run(tokenizer: Any = None, template: str = "chatml", **keys: Any) -> TrainingData:
        tok = tokenizer if tokenizer is not None else load_tokenizer(tiny_llama)
        spec = make_spec(tiny_llama, demo_data_dir, template=template, max_samples=60, **keys)
        return build_training_data(spec, tok, get_template(template, tok), tmp_path / "cache")

    return run


def _rows(data: TrainingData) -> list[dict[str, list[int]]]:
    dataset: Any = data.train_dataset
    return [dataset[i] for i in range(len(dataset))]


def test_second_build_reads_the_cache(build: Callable[..., TrainingData], calls: list[int]) -> None:
    first = build()
    assert calls and not first.from_cache
    assert first.cache_path is not None and (first.cache_path / "meta.json").is_file()
    calls.clear()
    second = build()
    assert calls == [] and second.from_cache
    assert second.cache_path == first.cache_path
    assert _rows(second) == _rows(first)
    assert second.stats == first.stats


@pytest.mark.parametrize(
    "change",
    [
        {"cutoff_len": 128},
        {"train_on_prompt": True},
        {"mask_history": True},
        {"neat_packing": True},
        {"template": "llama3"},
        {"default_system": "Be brief."},
    ],
)
def test_changed_inputs_rebuild(
    build: Callable[..., TrainingData], calls: list[int], change: dict[str, Any]
) -> None:
    first = build()
    calls.clear()
    changed = build(**change)
    assert calls and not changed.from_cache
    assert changed.cache_path != first.cache_path
    calls.clear()
    assert build().from_cache and calls == []  # the first entry is still there


def test_another_data_fingerprint_rebuilds(
    tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, calls: list[int]
) -> None:
    tok = load_tokenizer(tiny_llama)
    template = get_template("chatml", tok)
    a = build_training_data(make_spec(tiny_llama, demo_data_dir, max_samples=40), tok, template, tmp_path)
    calls.clear()
    b = build_training_data(make_spec(tiny_llama, demo_data_dir, max_samples=41), tok, template, tmp_path)
    assert calls and not b.from_cache and a.cache_path != b.cache_path


def test_another_tokenizer_rebuilds(
    build: Callable[..., TrainingData], calls: list[int], tiny_llama: Path
) -> None:
    build()
    calls.clear()
    tokenizer = load_tokenizer(tiny_llama)
    tokenizer.add_tokens(["<new_token>"])
    data = build(tokenizer=tokenizer)
    assert calls and not data.from_cache


def test_overwrite_cache_forces_a_rebuild(build: Callable[..., TrainingData], calls: list[int]) -> None:
    first = build()
    calls.clear()
    again = build(overwrite_cache=True)
    assert calls and not again.from_cache and _rows(again) == _rows(first)
    calls.clear()
    assert build().from_cache and calls == []


@pytest.mark.parametrize("damage", ["flip_bytes", "truncate_array", "bad_meta", "missing_meta"])
def test_damaged_entry_is_rebuilt(build: Callable[..., TrainingData], calls: list[int], damage: str) -> None:
    first = build()
    expected = _rows(first)  # read now: the rows are memory-mapped from the files damaged below
    folder = first.cache_path
    assert folder is not None
    array = folder / "s0.input_ids.npy"
    if damage == "flip_bytes":
        raw = bytearray(array.read_bytes())
        raw[-5] ^= 0xFF
        array.write_bytes(bytes(raw))
    elif damage == "truncate_array":
        array.write_bytes(array.read_bytes()[:-40])
    elif damage == "bad_meta":
        (folder / "meta.json").write_text('{"version": 1, "key"', encoding="utf-8")
    else:
        (folder / "meta.json").unlink()
    calls.clear()
    rebuilt = build()
    assert calls and not rebuilt.from_cache
    assert _rows(rebuilt) == expected
    calls.clear()
    assert build().from_cache and calls == []


def test_interrupted_write_leaves_no_entry(
    build: Callable[..., TrainingData], calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = npyfile.NpyAppender.append
    written: list[Path] = []

    def failing_append(self: npyfile.NpyAppender, values: Any) -> None:
        if self.path.parent.name.startswith(".tmp-"):  # the entry being written (not the row store)
            written.append(self.path)
            raise OSError("disk full")  # after the store's files were linked in
        real_append(self, values)

    monkeypatch.setattr(npyfile.NpyAppender, "append", failing_append)
    with pytest.raises(OSError, match="disk full"):
        build()
    monkeypatch.setattr(npyfile.NpyAppender, "append", real_append)
    root = written[0].parent.parent
    assert list(root.iterdir()) == []  # no final entry, no temporary folder, no row store is left
    calls.clear()
    data = build()
    assert calls and not data.from_cache
    assert data.cache_path is not None and json.loads((data.cache_path / "meta.json").read_text())["splits"]


def test_cache_keeps_eval_split(build: Callable[..., TrainingData], calls: list[int]) -> None:
    first = build(val_size=0.2)
    calls.clear()
    second = build(val_size=0.2)
    assert calls == [] and second.from_cache
    assert second.eval_dataset is not None and len(second.eval_dataset) == len(first.eval_dataset)  # type: ignore[arg-type]
    assert second.eval_stats == first.eval_stats


def test_cache_entry_without_a_key_match_is_ignored(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "meta.json").write_text(json.dumps({"version": 1, "key": "other", "splits": {}}))
    assert cache.load("abc") is None and not (tmp_path / "abc").exists()


def test_same_name_other_definition_rebuilds(
    tiny_llama: Path, demo_data_dir: Path, tmp_path: Path, calls: list[int]
) -> None:
    tok = load_tokenizer(tiny_llama)
    template = get_template("chatml", tok)
    spec = make_spec(tiny_llama, demo_data_dir, max_samples=30)
    build_training_data(spec, tok, template, tmp_path)
    calls.clear()
    edited = dataclasses.replace(template, assistant="{content}<|im_end|>\n\n")  # type: ignore[type-var]
    data = build_training_data(spec, tok, edited, tmp_path)
    assert calls and not data.from_cache
