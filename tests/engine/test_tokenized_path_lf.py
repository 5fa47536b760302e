"""``tokenized_path`` shared with LLaMA-Factory both ways: Tunery reads the ``save_to_disk`` folders LLaMA-Factory
0.9.5 writes (``data/loader.py`` ``get_dataset``: a DatasetDict with ``train`` and ``validation``, the columns
of its processors), and the folders Tunery writes load with ``datasets.load_from_disk`` into the rows LLaMA-Factory
trains on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pytest

from tests.engine.tokenize_support import load_tokenizer
from tunery.engine.templates import get_template
from tunery.engine.tokenize import IGNORE_INDEX, build_training_data, lf_saved
from tunery.engine.tokenize.cache import CachedSplit
from tunery.engine.tokenize.columns import ColumnRows
from tunery.engine.tokenize.encode import Recipe
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.lf_saved import flat_column
from tunery.engine.tokenize.rows import TokenRows
from tunery.engine.tokenize.saved import load_saved, save
from tunery.engine.tokenize.stats import compute_stats
from tunery.engine.tokenize.supervised import EncodeOptions
from tunery.spec import JobSpec

LF_PYTHON = Path(__file__).resolve().parents[2] / "bench" / ".venv-lf" / "bin" / "python"
X = IGNORE_INDEX  # a label that is not trained


def _recipe(stage: str, cutoff_len: int = 64, **keys: Any) -> Recipe:
    return Recipe(stage, EncodeOptions(cutoff_len), **keys)


def _save_lf(folder: Path, splits: dict[str, dict[str, list[Any]]], shards: int = 1) -> Path:
    """A folder as LLaMA-Factory writes it: ``DatasetDict(...).save_to_disk(tokenized_path)``; lists of Python
    ints become list<int64> as in its ``Dataset.map`` output."""
    parts = {name: datasets.Dataset.from_dict(columns) for name, columns in splits.items()}
    datasets.DatasetDict(parts).save_to_disk(
        str(folder), num_shards={name: min(shards, len(part)) for name, part in parts.items()}
    )
    return folder


def _sft_columns(ids: list[list[int]], labels: list[list[int]]) -> dict[str, list[Any]]:
    none = [None] * len(ids)
    masks = [[1] * len(row) for row in ids]
    return {"input_ids": ids, "attention_mask": masks, "labels": labels, "images": none, "videos": none, "audios": none}


def _token_lists(rows: TokenRows) -> tuple[list[list[int]], list[list[int]]]:
    items = [rows.row(index) for index in range(len(rows))]
    return [item["input_ids"] for item in items], [item["labels"] for item in items]


# ---- flat columns ------------------------------------------------------------------------------------------


def test_flat_column_reads_chunks_slices_and_spills(monkeypatch: pytest.MonkeyPatch) -> None:
    lists = [[1, 2, 3], [], [4], [5, 6]]
    chunked = pa.chunked_array([pa.array(lists[:2], pa.list_(pa.int64())), pa.array(lists, pa.list_(pa.int64()))[2:]])
    values, offsets = flat_column(chunked, "input_ids")
    assert values.dtype == np.int32 and values.tolist() == [1, 2, 3, 4, 5, 6]
    assert offsets.tolist() == [0, 3, 3, 4, 6]
    single = pa.chunked_array([pa.array(lists, pa.list_(pa.int32()))])
    view, _ = flat_column(single, "input_ids")
    assert not view.flags.writeable  # the Arrow buffer itself, not a copy
    monkeypatch.setattr(lf_saved, "SPILL_VALUES", 0)
    spilled, offsets = flat_column(chunked, "input_ids")
    assert isinstance(spilled, np.memmap) and spilled.tolist() == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="null rows"):
        flat_column(pa.chunked_array([pa.array([[1], None], pa.list_(pa.int64()))]), "labels")


# ---- reading what LLaMA-Factory wrote ----------------------------------------------------------------------


def test_reads_lf_sft_folder(tmp_path: Path) -> None:
    ids = [[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 10, 2]]
    labels = [[X, X, 6, 2], [X, 7, 2], [X, X, X, 10, 2]]
    folder = _save_lf(tmp_path / "lf", {
        "train": _sft_columns(ids, labels), "validation": _sft_columns(ids[:1], labels[:1]),
    }, shards=2)  # fmt: skip
    splits = load_saved(str(folder), _recipe("sft"))
    assert list(splits) == ["train", "eval"]
    train = splits["train"].rows
    assert isinstance(train, TokenRows) and _token_lists(train) == (ids, labels)
    assert train.input_ids.dtype == np.int32 and train.offsets.dtype == np.int64
    stats = splits["train"].stats
    assert (stats.rows, stats.tokens, stats.trained_tokens, stats.lengths.max) == (3, 12, 6, 5)
    assert _token_lists(splits["eval"].rows) == (ids[:1], labels[:1])  # type: ignore[arg-type]


def test_reads_lf_pretraining_and_packed_rows(tmp_path: Path) -> None:
    ids = [[1, 5, 6, 2], [1, 7, 2]]
    pt = _save_lf(tmp_path / "pt", {"train": {"input_ids": ids, "attention_mask": [[1] * 4, [1] * 3]}})
    rows = load_saved(str(pt), _recipe("pt")).pop("train").rows
    assert _token_lists(rows) == (ids, ids)  # type: ignore[arg-type]  # LF's pt collator trains on the ids
    with pytest.raises(TokenizeError) as caught:
        load_saved(str(pt), _recipe("sft"))
    assert f"tokenized_path {pt} holds LLaMA-Factory's save_to_disk output that stage sft cannot train on" in str(
        caught.value
    )
    assert "pretraining rows (no labels column)" in str(caught.value)
    packed = _sft_columns([[1, 5, 2, 1, 7, 2, 0]], [[X, 5, 2, X, 7, 2, X]])
    packed["position_ids"] = [[0, 1, 2, 0, 1, 2, 0]]
    folder = _save_lf(tmp_path / "packed", {"train": packed})
    rows = load_saved(str(folder), _recipe("sft")).pop("train").rows
    assert isinstance(rows, TokenRows) and rows.position_ids is not None
    assert rows.position_ids.tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_reads_lf_preference_and_kto_rows(tmp_path: Path) -> None:
    pairs = {
        "chosen_input_ids": [[1, 5, 6, 7], [1, 8, 9]],
        "chosen_attention_mask": [[1] * 4, [1] * 3],
        "chosen_labels": [[X, X, 6, 7], [X, 8, 9]],
        "rejected_input_ids": [[1, 5, 4], [1, 3]],
        "rejected_attention_mask": [[1] * 3, [1] * 2],
        "rejected_labels": [[X, X, 4], [X, 3]],
        "images": [None, None],
    }
    folder = _save_lf(tmp_path / "dpo", {"train": pairs})
    split = load_saved(str(folder), _recipe("dpo")).pop("train")
    assert isinstance(split.rows, ColumnRows) and split.rows.kind == "pairwise"
    assert [split.rows.row(i) for i in range(2)] == [
        {"prompt_ids": [1, 5], "chosen_ids": [6, 7], "rejected_ids": [4]},
        {"prompt_ids": [1], "chosen_ids": [8, 9], "rejected_ids": [3]},
    ]
    assert (split.stats.rows, split.stats.trained_tokens) == (2, 6)
    kto = {
        "input_ids": [[1, 5, 6], [1, 7, 8, 9]],
        "attention_mask": [[1] * 3, [1] * 4],
        "labels": [[X, X, 6], [X, 7, 8, 9]],
        "kl_input_ids": [[1, 5, 8, 9], [1, 7, 6]],
        "kl_attention_mask": [[1] * 4, [1] * 3],
        "kl_labels": [[X, X, 8, 9], [X, 7, 6]],
        "kto_tags": [True, False],
    }
    folder = _save_lf(tmp_path / "kto", {"train": kto})
    rows = load_saved(str(folder), _recipe("kto")).pop("train").rows
    assert [rows.row(i) for i in range(2)] == [
        {"prompt_ids": [1, 5], "completion_ids": [6], "label": True},
        {"prompt_ids": [1], "completion_ids": [7, 8, 9], "label": False},
    ]
    with pytest.raises(TokenizeError, match="the rows were written for stage kto"):
        load_saved(str(folder), _recipe("sft"))
    with pytest.raises(TokenizeError, match="no chosen_input_ids column"):
        load_saved(str(folder), _recipe("rm"))
    with pytest.raises(TokenizeError, match=f"tokenized_path {folder} .*stage ppo needs each prompt's text"):
        load_saved(str(folder), _recipe("ppo"))
    pairs["rejected_input_ids"] = [[1, 4, 4], [1, 3]]  # another prompt than the chosen side's
    folder = _save_lf(tmp_path / "odd", {"train": pairs})
    with pytest.raises(TokenizeError, match="the chosen and rejected rows have different prompts"):
        load_saved(str(folder), _recipe("dpo"))


# ---- writing what LLaMA-Factory reads ----------------------------------------------------------------------


def _spec(model: Path, data_dir: Path, **keys: Any) -> JobSpec:
    values = {"model_name_or_path": str(model), "dataset": "alpaca_en_demo", "dataset_dir": str(data_dir)}
    return JobSpec.from_mapping({**values, "template": "chatml", "cutoff_len": 96, "max_samples": 60, **keys})


@pytest.mark.parametrize(("stage", "dataset"), [("sft", "alpaca_en_demo"), ("pt", "c4_demo")])
def test_written_folder_loads_in_datasets_as_lf_rows(
    stage: str, dataset: str, tiny_llama: Path, demo_data_dir: Path, tmp_path: Path
) -> None:
    tokenizer = load_tokenizer(tiny_llama)
    template = get_template("chatml", tokenizer)
    folder = tmp_path / "tokenized"
    spec = _spec(tiny_llama, demo_data_dir, stage=stage, dataset=dataset, tokenized_path=str(folder), val_size=10)
    first = build_training_data(spec, tokenizer, template, None)
    assert (folder / "meta.json").is_file()
    assert json.loads((folder / "dataset_dict.json").read_text()) == {"splits": ["train", "validation"]}
    loaded = datasets.load_from_disk(str(folder))
    columns = {"input_ids", "attention_mask"} | ({"labels", "images", "videos", "audios"} if stage == "sft" else set())
    for name, rows in (("train", first.train_dataset.rows), ("validation", first.eval_dataset.rows)):  # type: ignore[union-attr]
        split = loaded[name]
        assert set(split.column_names) == columns
        ids, labels = _token_lists(rows)
        assert split["input_ids"] == ids and split["attention_mask"] == [[1] * len(row) for row in ids]
        assert split["labels"] == labels if stage == "sft" else labels == ids
    # the same folder without Tunery's files: read from LLaMA-Factory's layout, the same rows
    for name in os.listdir(folder):
        if name == "meta.json" or name.endswith(".npy"):
            (folder / name).unlink()
    again = build_training_data(spec, tokenizer, template, None)
    assert again.from_cache
    for left, right in ((first.train_dataset, again.train_dataset), (first.eval_dataset, again.eval_dataset)):
        assert _token_lists(left.rows) == _token_lists(right.rows)  # type: ignore[union-attr]


def test_packed_rows_keep_positions_and_neat_masks(tmp_path: Path) -> None:
    rows = TokenRows.from_lists([[1, 5, 2, 1, 7, 8, 2], [1, 9, 2]], [[X, 5, 2, X, X, 8, 2], [X, 9, 2]])
    rows.position_ids = np.asarray([0, 1, 2, 0, 1, 2, 3, 0, 1, 2], dtype=np.int32)
    splits = {"train": CachedSplit(rows, compute_stats(rows.lengths, rows, 0, 0, 16))}
    save(str(tmp_path / "neat"), splits, "key", _recipe("sft", packing=True, neat_packing=True))
    train = datasets.load_from_disk(str(tmp_path / "neat"))["train"]
    assert train["attention_mask"] == [[1, 1, 1, 2, 2, 2, 2], [1, 1, 1]]  # LF's neat packing: sequence numbers
    assert train["position_ids"] == [[0, 1, 2, 0, 1, 2, 3], [0, 1, 2]]
    save(str(tmp_path / "plain"), splits, "key", _recipe("sft", packing=True))
    assert datasets.load_from_disk(str(tmp_path / "plain"))["train"]["attention_mask"][0] == [1] * 7


def test_written_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lf_saved, "BATCH_ROWS", 2)
    ids = [[1, 2 + index, 3] for index in range(5)] + [[]]
    rows = TokenRows.from_lists(ids, [[X, *row[1:]] for row in ids[:5]] + [[]])
    save(str(tmp_path / "t"), {"train": CachedSplit(rows, compute_stats(rows.lengths, rows, 0, 0, 8))}, "key")
    train = datasets.load_from_disk(str(tmp_path / "t"))["train"]
    assert train["input_ids"] == ids and "labels" in train.column_names  # labels differ from ids: sft rows
    assert lf_saved._table(rows, False, False).column("input_ids").num_chunks == 3  # rows 2 + 2 + 2


@pytest.mark.skipif(not LF_PYTHON.is_file(), reason="LLaMA-Factory's venv (bench/setup_lf.sh) is not installed")
def test_lf_venv_reads_the_written_folder(tmp_path: Path) -> None:
    ids = [[1, 5, 6, 2], [1, 7, 2]]
    rows = TokenRows.from_lists(ids, [[X, X, 6, 2], [X, 7, 2]])
    save(str(tmp_path / "t"), {"train": CachedSplit(rows, compute_stats(rows.lengths, rows, 0, 0, 8))}, "key")
    code = (
        "import json, sys; from datasets import load_from_disk; from llamafactory.data.data_utils import "
        "get_dataset_module; m = get_dataset_module(load_from_disk(sys.argv[1])); t = m['train_dataset']; "
        "print(json.dumps([[row['input_ids'], row['labels']] for row in t]))"
    )
    done = subprocess.run([str(LF_PYTHON), "-c", code, str(tmp_path / "t")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [[ids[0], [X, X, 6, 2]], [ids[1], [X, 7, 2]]]
