"""The flat-memory pt/sft pipeline (tokenize.flat) against the in-memory one (load_examples + encode_all): the
same token ids, labels, positions, row order, statistics and report for every option that shapes the rows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.engine.test_tokenize_pipeline import make_spec
from tests.engine.tokenize_support import load_tokenizer
from tunery.engine.data.api import DataError
from tunery.engine.templates import get_template
from tunery.engine.tokenize import TrainingData, build_training_data
from tunery.engine.tokenize import gather as gather_module
from tunery.engine.tokenize.pipeline import load_data, tokenize_loaded


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gather steps of a few rows (and batches of 37 rows: CASES), so chunk and bin boundaries fall everywhere."""
    monkeypatch.setattr(gather_module, "GATHER_ROWS", 23)


def _both(spec: Any, tokenizer: Any, tmp_path: Path) -> tuple[TrainingData, TrainingData]:
    template = None if spec.method.stage == "pt" else get_template(spec.data.template, tokenizer)
    flat = build_training_data(spec, tokenizer, template, tmp_path / "cache")
    lists = tokenize_loaded(load_data(spec), spec, tokenizer, template, None)
    return flat, lists


def _arrays(dataset: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(array) for name, array in dataset.rows.arrays().items()}


def _same(a: Any, b: Any) -> None:
    left, right = _arrays(a), _arrays(b)
    assert left.keys() == right.keys()
    for name in left:
        assert np.array_equal(left[name], right[name]), name


def _same_data(flat: TrainingData, lists: TrainingData) -> None:
    _same(flat.train_dataset, lists.train_dataset)
    assert flat.stats == lists.stats
    assert flat.report is not None and lists.report is not None
    assert flat.report.warnings == lists.report.warnings
    if isinstance(lists.eval_dataset, dict):
        assert isinstance(flat.eval_dataset, dict) and flat.eval_dataset.keys() == lists.eval_dataset.keys()
        for name in lists.eval_dataset:
            _same(flat.eval_dataset[name], lists.eval_dataset[name])
    elif lists.eval_dataset is not None:
        _same(flat.eval_dataset, lists.eval_dataset)
    else:
        assert flat.eval_dataset is None
    assert flat.eval_stats == lists.eval_stats
    assert flat.report is not None and lists.report is not None
    assert (flat.report.rows_total, flat.report.rows_valid) == (lists.report.rows_total, lists.report.rows_valid)
    assert flat.report.errors == lists.report.errors and flat.report.by_dataset == lists.report.by_dataset


CASES: dict[str, dict[str, Any]] = {
    "sft": {},
    "sft_all_rows": {"max_samples": None, "cutoff_len": 128},
    "sft_three_datasets_concat": {"dataset": "alpaca_en_demo,identity,glaive_toolcall_en_demo", "max_samples": 90},
    "sft_interleave_probs": {
        "dataset": "alpaca_en_demo,identity",
        "mix_strategy": "interleave_under",
        "interleave_probs": "0.7,0.3",
        "max_samples": 80,
    },
    "sft_interleave_over": {"dataset": "alpaca_en_demo,identity", "mix_strategy": "interleave_over", "max_samples": 50},
    "sft_val_fraction": {"val_size": 0.15},
    "sft_val_rows": {"val_size": 17, "packing": True},
    "sft_packing": {"packing": True, "cutoff_len": 200},
    "sft_neat_packing": {"packing": True, "neat_packing": True, "cutoff_len": 200},
    "sft_eval_dataset": {"eval_dataset": "identity", "max_samples": 60},
    "sft_eval_each": {
        "eval_dataset": "identity,alpaca_zh_demo",
        "eval_on_each_dataset": True,
        "max_samples": 40,
    },
    "pt_packed": {"stage": "pt", "dataset": "c4_demo", "template": None, "cutoff_len": 64},
    "pt_unpacked": {"stage": "pt", "dataset": "c4_demo", "template": None, "packing": False, "cutoff_len": 64},
    "pt_val": {"stage": "pt", "dataset": "wiki_demo", "template": None, "cutoff_len": 64, "val_size": 0.1},
    # column rows of the preference and RL stages; short cutoffs drop some rows (a warning names them)
    "dpo": {"stage": "dpo", "dataset": "dpo_en_demo", "cutoff_len": 96, "val_size": 0.1},
    "rm_all_rows": {"stage": "rm", "dataset": "dpo_en_demo", "max_samples": None, "cutoff_len": 512},
    "kto": {"stage": "kto", "dataset": "kto_en_demo", "cutoff_len": 80, "eval_dataset": "kto_en_demo"},
    "ppo_prompts": {
        "stage": "ppo",
        "reward_model": "/tmp/reward",
        "dataset": "alpaca_en_demo,identity",
        "cutoff_len": 24,
        "mix_strategy": "interleave_over",
    },
}


@pytest.mark.usefixtures("small_steps")
@pytest.mark.parametrize("keys", CASES.values(), ids=list(CASES))
def test_flat_pipeline_equals_the_in_memory_one(
    tiny_llama: Path, demo_data_dir: Path, tokenizer: Any, tmp_path: Path, keys: dict[str, Any]
) -> None:
    spec = make_spec(tiny_llama, demo_data_dir, preprocessing_batch_size=37, **keys)
    flat, lists = _both(spec, tokenizer, tmp_path)
    assert flat.cache_path is not None and flat.cache_path.parent == tmp_path / "cache"
    _same_data(flat, lists)
    if spec.method.stage == "ppo":  # prompts longer than the cutoff are dropped, and named in a warning
        assert flat.report is not None and any("rows dropped" in warning for warning in flat.report.warnings)
    again = build_training_data(spec, tokenizer, None if spec.method.stage == "pt" else
                                get_template(spec.data.template, tokenizer), tmp_path / "cache")  # fmt: skip
    assert again.from_cache
    _same_data(again, lists)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [flat.cache_path.name]  # no scratch left


def _dataset_dir(tmp_path: Path, rows: list[Any], info: dict[str, Any] | None = None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    entry = {"file_name": "rows.json", **(info or {})}
    (folder / "dataset_info.json").write_text(json.dumps({"mine": entry}), encoding="utf-8")
    return folder


def _alpaca(count: int) -> list[Any]:
    return [{"instruction": f"question {i} " * (1 + i % 7), "input": "", "output": f"answer {i}"} for i in range(count)]


@pytest.mark.usefixtures("small_steps")
def test_bad_rows_and_num_samples_report_the_same(tiny_llama: Path, tokenizer: Any, tmp_path: Path) -> None:
    rows = _alpaca(150)
    rows[3] = {"instruction": 5, "output": "x"}
    rows[40] = "just text"
    rows[77] = {"instruction": "q"}
    rows[120] = [1, 2]
    folder = _dataset_dir(tmp_path, rows, {"num_samples": 200})
    spec = make_spec(tiny_llama, folder, dataset="mine", max_samples=None, preprocessing_batch_size=37)
    flat, lists = _both(spec, tokenizer, tmp_path)
    _same_data(flat, lists)
    assert flat.report is not None and flat.report.errors and flat.report.rows_total == 150
    capped = make_spec(tiny_llama, folder, dataset="mine", max_samples=60, val_size=0.1, seed=7)
    _same_data(*_both(capped, tokenizer, tmp_path / "b"))


def test_row_stores_of_killed_builds_are_removed(tiny_llama: Path, tokenizer: Any, tmp_path: Path) -> None:
    from tunery.engine.tokenize import flat

    cache = tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = cache / f"{flat._scratch_owner()}{dead.stdout.strip()}-abc"  # a build killed mid-way
    other_host = cache / f"{flat.SCRATCH_PREFIX}elsewhere-1-abc"  # a shared cache: not ours to judge
    for folder in (orphan, other_host):
        folder.mkdir(parents=True)
        (folder / "ids.npy").write_bytes(b"x")
    spec = make_spec(tiny_llama, _dataset_dir(tmp_path, _alpaca(20)), dataset="mine")
    build_training_data(spec, tokenizer, get_template("chatml", tokenizer), cache)
    assert not orphan.exists() and other_host.exists()


def test_a_dataset_without_valid_rows_fails_with_its_errors(tiny_llama: Path, tokenizer: Any, tmp_path: Path) -> None:
    folder = _dataset_dir(tmp_path, [{"instruction": 1, "output": "a"}] * 3)
    spec = make_spec(tiny_llama, folder, dataset="mine")
    with pytest.raises(DataError, match=r"dataset 'mine' has no valid row \(3 rows checked\)") as caught:
        build_training_data(spec, tokenizer, get_template("chatml", tokenizer), tmp_path / "cache")
    assert "rows.json, row 1, field 'instruction'" in str(caught.value)


def test_preprocessing_workers_give_the_same_rows(
    tiny_llama: Path, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _dataset_dir(tmp_path, _alpaca(16384 + 500))  # above the one-process threshold
    template = get_template("chatml", tokenizer)
    keys: dict[str, Any] = {"dataset": "mine", "max_samples": None, "cutoff_len": 64, "preprocessing_batch_size": 50}
    one = build_training_data(make_spec(tiny_llama, folder, **keys), tokenizer, template, tmp_path / "one")
    two_spec = make_spec(tiny_llama, folder, preprocessing_num_workers=2, **keys)
    two = build_training_data(two_spec, tokenizer, template, tmp_path / "two")
    _same(one.train_dataset, two.train_dataset)
    assert one.stats == two.stats and len(one.train_dataset) == 16884  # type: ignore[arg-type]


_PEAK = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from tests.engine.test_tokenize_pipeline import make_spec
    from tests.engine.tokenize_support import load_tokenizer
    from tunery.engine.templates import get_template
    from tunery.engine.tokenize import build_training_data
    model, folder, cache = sys.argv[1:4]
    tokenizer = load_tokenizer(Path(model))
    spec = make_spec(Path(model), Path(folder), dataset="mine", max_samples=None, cutoff_len=64)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = build_training_data(spec, tokenizer, get_template("chatml", tokenizer), Path(cache))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": len(data.train_dataset), "growth_kb": after - before}))
    """
)


def _peak_growth(model: Path, folder: Path, cache: Path) -> dict[str, int]:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(model), str(folder), str(cache)],
        cwd=root, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_memory_does_not_grow_with_the_rows(tiny_llama: Path, tmp_path: Path) -> None:
    """Peak memory of the data step for 8,000 and 40,000 rows (fresh processes): five times the rows may not
    cost more than a few MB more (in-memory rows would cost several KB each)."""
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _dataset_dir(tmp_path / "small", _alpaca(8_000))
    large = _dataset_dir(tmp_path / "large", _alpaca(40_000))
    a = _peak_growth(tiny_llama, small, tmp_path / "cache-a")
    b = _peak_growth(tiny_llama, large, tmp_path / "cache-b")
    assert (a["rows"], b["rows"]) == (8_000, 40_000)
    extra_per_row = (b["growth_kb"] - a["growth_kb"]) * 1024 / 32_000
    assert extra_per_row < 400, (a, b)  # bytes per row; the row-per-object pipeline needed ~9,000
