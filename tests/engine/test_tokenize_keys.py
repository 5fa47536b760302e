"""Data keys honoured by the tokenize pipeline and the data layer: preprocessing_num_workers (the same rows from
worker processes), ignore_pad_token_for_loss (label padding), tokenized_path (write, then read instead of the
datasets) and the hub tokens (passed to hub dataset downloads)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch.utils.data import IterableDataset

from tests.engine.tokenize_support import alpaca_examples, load_tokenizer, sharegpt_examples
from tunery.engine.data.load import load_examples
from tunery.engine.data.types import Example, Message, Role
from tunery.engine.templates import get_template
from tunery.engine.tokenize import IGNORE_INDEX, PackedCollator, PaddingCollator, build_training_data, parallel
from tunery.engine.tokenize import encode as encode_module
from tunery.engine.tokenize import spill as spill_module
from tunery.engine.tokenize.encode import Recipe, encode_all
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.pipeline import load_data, make_collator, recipe_for
from tunery.engine.tokenize.stream import StreamingTokenizedDataset
from tunery.engine.tokenize.supervised import EncodeOptions
from tunery.spec import JobSpec


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 40 examples, and workers from the first example on: a few hundred rows use several workers."""
    monkeypatch.setattr(encode_module, "CHUNK_EXAMPLES", 40)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_EXAMPLES", 1)


def _spec(model: Path, data_dir: Path, **keys: Any) -> JobSpec:
    values: dict[str, Any] = {
        "model_name_or_path": str(model),
        "dataset": "alpaca_en_demo",
        "dataset_dir": str(data_dir),
        "template": "chatml",
        "cutoff_len": 128,
        "max_samples": 200,
    }
    return JobSpec.from_mapping({**values, **keys})


def _same_rows(a: Any, b: Any) -> None:
    left, right = a.arrays(), b.arrays()
    assert left.keys() == right.keys()
    for name in left:
        assert np.array_equal(left[name], right[name]), name


# ---- preprocessing_num_workers -----------------------------------------------------------------------------


def _square_slowly(n: int) -> tuple[int, int]:
    time.sleep(0.2)  # long enough that both workers take tasks, even on a loaded machine
    return n * n, os.getpid()


def test_map_chunks_runs_in_worker_processes_in_order() -> None:
    results = list(parallel.map_chunks(_square_slowly, range(12), 2))
    assert [square for square, _ in results] == [n * n for n in range(12)]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids and len(pids) == 2
    assert [pid for _, pid in parallel.map_chunks(lambda n: (n, os.getpid()), range(3), 1)] == [os.getpid()] * 3


def test_small_inputs_stay_in_one_process() -> None:
    assert parallel.workers_for([0] * 10, 8) == 1
    assert parallel.workers_for([0] * parallel.PARALLEL_MIN_EXAMPLES, 8) == 8
    assert parallel.workers_for(iter([0]), 8) == 8  # a stream's length is unknown


def _recipes() -> list[tuple[str, Recipe]]:
    options = EncodeOptions(cutoff_len=96)
    return [
        ("sft", Recipe("sft", options)),
        ("sft neat packing", Recipe("sft", options, packing=True, neat_packing=True)),
        ("pt packing", Recipe("pt", options, packing=True)),
        ("dpo columns", Recipe("dpo", options)),
    ]


@pytest.mark.parametrize("recipe", [r for _, r in _recipes()], ids=[name for name, _ in _recipes()])
@pytest.mark.usefixtures("small_chunks")
def test_workers_give_identical_rows(tokenizer: Any, demo_data_dir: Path, recipe: Recipe) -> None:
    if recipe.stage == "dpo":
        spec = _spec(Path("m"), demo_data_dir, stage="dpo", dataset="dpo_en_demo", max_samples=150)
        examples: list[Example] = list(load_examples(spec.data, "dpo", 0).train)
    else:
        examples = alpaca_examples(demo_data_dir / "alpaca_en_demo.json", 200)
    template = get_template("chatml", tokenizer)
    one_rows, one_stats = encode_all(examples, tokenizer, template, recipe, workers=1)
    two_rows, two_stats = encode_all(examples, tokenizer, template, recipe, workers=2)
    _same_rows(one_rows, two_rows)
    assert one_stats == two_stats


@pytest.mark.usefixtures("small_chunks")
def test_pipeline_with_workers_matches_one_process(
    tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[int] = []

    def spy(func: Any, items: Any, workers: int) -> Any:
        used.append(workers)
        return parallel.map_chunks(func, items, workers)

    monkeypatch.setattr(spill_module, "map_chunks", spy)  # pt/sft rows are built through tokenize.spill
    template = get_template("chatml", tokenizer)
    one = build_training_data(_spec(tiny_llama, demo_data_dir), tokenizer, template, None)
    two = build_training_data(_spec(tiny_llama, demo_data_dir, preprocessing_num_workers=2), tokenizer, template, None)
    _same_rows(one.train_dataset.rows, two.train_dataset.rows)  # type: ignore[union-attr]
    assert used == [1, 2]


def test_streaming_with_workers_yields_the_same_rows(tokenizer: Any, demo_data_dir: Path) -> None:
    examples = sharegpt_examples(demo_data_dir / "glaive_toolcall_en_demo.json", 60)
    template = get_template("qwen", tokenizer)
    recipe = Recipe("sft", EncodeOptions(cutoff_len=256))
    one = list(StreamingTokenizedDataset(examples, tokenizer, template, recipe, chunk_size=7))
    two = list(StreamingTokenizedDataset(examples, tokenizer, template, recipe, chunk_size=7, workers=2))
    assert one == two and len(one) == 60


def test_a_worker_error_reaches_the_caller(tokenizer: Any, small_chunks: None) -> None:
    bad = [Example(prompt=[Message(Role.ASSISTANT, "no question")], response=[Message(Role.ASSISTANT, "a")])] * 3
    recipe = Recipe("sft", EncodeOptions(cutoff_len=64))
    with pytest.raises(Exception) as one:
        encode_all(bad, tokenizer, get_template("chatml", tokenizer), recipe, workers=1)
    with pytest.raises(type(one.value)) as two:
        encode_all(bad, tokenizer, get_template("chatml", tokenizer), recipe, workers=2)
    assert str(two.value) == str(one.value)


# ---- ignore_pad_token_for_loss -----------------------------------------------------------------------------


@pytest.mark.parametrize("neat", [False, True])
def test_ignore_pad_token_for_loss(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, neat: bool) -> None:
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5], "labels": [5]}]
    if neat:
        rows = [{**row, "position_ids": list(range(len(row["input_ids"])))} for row in rows]
    pad = tokenizer.pad_token_id
    for ignore, expected in ((True, IGNORE_INDEX), (False, pad)):
        spec = _spec(tiny_llama, demo_data_dir, ignore_pad_token_for_loss=ignore, neat_packing=neat)
        collator = make_collator(spec, tokenizer, recipe_for(spec, None))
        assert isinstance(collator, PackedCollator if neat else PaddingCollator)
        batch = collator(rows)
        padded = batch["input_ids"] == pad
        assert padded.any()
        assert (batch["labels"][padded] == expected).all()


# ---- tokenized_path ----------------------------------------------------------------------------------------


def test_tokenized_path_is_written_then_read_instead_of_the_datasets(
    tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    template = get_template("chatml", tokenizer)
    folder = tmp_path / "tokenized"
    first = build_training_data(
        _spec(tiny_llama, demo_data_dir, tokenized_path=str(folder), val_size=10), tokenizer, template, None
    )
    assert (folder / "meta.json").is_file() and not first.from_cache
    # the datasets named now do not even exist: LF reads the folder and ignores the data keys
    second = build_training_data(
        _spec(tiny_llama, tmp_path, dataset="missing", tokenized_path=str(folder)), tokenizer, template, None
    )
    assert second.from_cache and second.cache_path == folder
    _same_rows(first.train_dataset.rows, second.train_dataset.rows)  # type: ignore[union-attr]
    _same_rows(first.eval_dataset.rows, second.eval_dataset.rows)  # type: ignore[union-attr]
    assert second.report is not None and "the dataset keys are not read" in second.report.warnings[0]


def test_tokenized_path_refuses_what_it_cannot_use(
    tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    template = get_template("chatml", tokenizer)
    lf = tmp_path / "lf"
    lf.mkdir()
    (lf / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    with pytest.raises(TokenizeError, match="LLaMA-Factory's save_to_disk output"):
        build_training_data(_spec(tiny_llama, demo_data_dir, tokenized_path=str(lf)), tokenizer, template, None)
    sft = tmp_path / "sft"
    build_training_data(_spec(tiny_llama, demo_data_dir, tokenized_path=str(sft)), tokenizer, template, None)
    dpo = _spec(tiny_llama, demo_data_dir, stage="dpo", dataset="dpo_en_demo", tokenized_path=str(sft))
    with pytest.raises(TokenizeError, match="holds tokens rows, stage dpo trains on pairwise rows"):
        build_training_data(dpo, tokenizer, template, None)
    streamed = _spec(tiny_llama, demo_data_dir, streaming=True, max_steps=5, tokenized_path=str(tmp_path / "new"))
    with pytest.raises(TokenizeError, match="streamed data cannot be saved"):
        build_training_data(streamed, tokenizer, template, None)


def test_streaming_reads_saved_rows(tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    template = get_template("chatml", tokenizer)
    folder = tmp_path / "tokenized"
    build_training_data(_spec(tiny_llama, demo_data_dir, tokenized_path=str(folder)), tokenizer, template, None)
    spec = _spec(tiny_llama, demo_data_dir, streaming=True, max_steps=5, tokenized_path=str(folder))
    data = build_training_data(spec, tokenizer, template, None)
    assert data.from_cache and not isinstance(data.train_dataset, IterableDataset)


# ---- hub tokens --------------------------------------------------------------------------------------------


def test_hub_token_reaches_the_hub_download(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    info = {"private_set": {"hf_hub_url": "org/private", "columns": {"prompt": "instruction", "response": "output"}}}
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    seen: list[Any] = []

    def fake_load_dataset(path: str, **kwargs: Any) -> Any:
        seen.append((path, kwargs.get("token")))
        return datasets.Dataset.from_list([{"instruction": "q", "output": "a"}] * 3)

    from tunery.engine.data import hub

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "unreachable", lambda url: None)  # the hub answers (a stand-in load_dataset)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec = _spec(tiny_llama, tmp_path, dataset="private_set", hf_hub_token="hf_secret", ms_hub_token="ms_secret")
    loaded = load_data(spec)
    assert seen == [("org/private", "hf_secret")]
    assert len(list(loaded.train)) == 3
