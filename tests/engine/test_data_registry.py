"""dataset_info.json: errors for missing files and names, hub datasets offline, entry checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.data_support import load, section, write_dataset_dir
from tunery.engine.data.api import DataError
from tunery.engine.data.load import load_examples, validate_datasets
from tunery.engine.data.registry import get_dataset_attrs

ROWS = [{"instruction": "q", "output": "a"}]


def test_missing_dataset_info(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load(tmp_path, "anything")
    message = str(caught.value)
    assert str(tmp_path / "dataset_info.json") in message
    assert "set dataset_dir to that folder" in message


def test_invalid_dataset_info_json(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text('{\n  "a": {"file_name": "a.json",}\n}\n')
    with pytest.raises(DataError, match=r"dataset_info.json: invalid JSON at line 2"):
        load(tmp_path, "a")


def test_unknown_name_suggests_close_matches(demo_data_dir: Path) -> None:
    with pytest.raises(DataError) as caught:
        load(demo_data_dir, "alpaca_en_dem")
    message = str(caught.value)
    assert "dataset 'alpaca_en_dem' is not defined in" in message and "dataset_info.json" in message
    assert "did you mean: alpaca_en_demo" in message


def test_unknown_name_without_close_match_lists_some(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path, {"mine": {"file_name": "m.json"}}, {"m.json": ROWS})
    with pytest.raises(DataError, match=r"'zzz' is not defined .* e\.g\. mine"):
        load(root, "zzz")


def test_missing_data_file_names_the_path(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path, {"mine": {"file_name": "nope.json"}}, {})
    with pytest.raises(DataError) as caught:
        load(root, "mine")
    assert f"dataset 'mine': {root / 'nope.json'} not found" in str(caught.value)


def test_hub_dataset_offline_says_what_to_do(demo_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: offline at once
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DataError) as caught:
        load(demo_data_dir, "alpaca_en")
    message = str(caught.value)
    assert "dataset 'alpaca_en' comes from the Hugging Face Hub (llamafactory/alpaca_en)" in message
    assert "no connection to 127.0.0.1" in message
    assert "\"file_name\" of 'alpaca_en' in dataset_info.json" in message


def test_modelscope_dataset_needs_its_package(demo_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    with pytest.raises(DataError, match=r"'alpaca_en' comes from the ModelScope Hub .* modelscope package"):
        load(demo_data_dir, "alpaca_en")


def test_hub_source_priority(demo_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (attr,), _ = get_dataset_attrs(["alpaca_en"], str(demo_data_dir))
    assert (attr.load_from, attr.dataset_name) == ("hf_hub", "llamafactory/alpaca_en")
    monkeypatch.setenv("USE_OPENMIND_HUB", "1")
    (attr,), _ = get_dataset_attrs(["alpaca_en"], str(demo_data_dir))
    assert (attr.load_from, attr.dataset_name) == ("om_hub", "HaM/alpaca_en")
    (deepctrl,), _ = get_dataset_attrs(["deepctrl"], str(demo_data_dir))  # only an ms url
    assert deepctrl.load_from == "ms_hub"
    (online,), _ = get_dataset_attrs(["org/data"], "ONLINE")
    assert (online.load_from, online.dataset_name) == ("om_hub", "org/data")


def test_cloud_file_without_storage_package(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path, {"c": {"cloud_file_name": "s3://bucket/data.json"}}, {})
    with pytest.raises(DataError, match=r"dataset 'c' is a cloud file \(s3://bucket/data.json\)"):
        load_examples(section(root, "c"), "sft", 1, cache_dir=str(tmp_path / "cache"))


def test_loading_scripts_are_refused(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path, {"s": {"script_url": "ds.py"}}, {"ds.py": "print(1)\n"})
    with pytest.raises(DataError, match="dataset loading script"):
        load(root, "s")


def test_script_folder_is_read_like_a_data_folder(tmp_path: Path) -> None:
    files = {"ds/train.json": ROWS, "ds/test.json": [{"instruction": "t", "output": "u"}] * 2}
    root = write_dataset_dir(tmp_path, {"s": {"script_url": "ds"}}, files)
    assert [e.prompt[0].content for e in load(root, "s").train] == ["q"]


def test_entry_checks(tmp_path: Path) -> None:
    info = {
        "bad_format": {"file_name": "a.json", "formatting": "chatml"},
        "bad_ranking": {"file_name": "a.json", "ranking": "yes"},
        "bad_columns": {"file_name": "a.json", "columns": ["prompt"]},
        "no_file": {"columns": {"prompt": "q"}},
        "typo": {"file_name": "a.json", "colums": {}, "columns": {"promt": "q"}},
    }
    root = write_dataset_dir(tmp_path, info, {"a.json": ROWS})
    with pytest.raises(DataError, match="formatting 'chatml' is unknown; use one of: alpaca, openai, sharegpt"):
        load(root, "bad_format")
    with pytest.raises(DataError, match=r"dataset 'bad_ranking': 'ranking' must be a bool"):
        load(root, "bad_ranking")
    with pytest.raises(DataError, match="'columns' must be an object"):
        load(root, "bad_columns")
    with pytest.raises(DataError, match="dataset 'no_file': needs 'file_name'"):
        load(root, "no_file")
    report = validate_datasets(section(root, "typo"), "sft")
    assert any("unknown key 'colums'" in w for w in report.warnings)
    assert any("unknown columns key 'promt'" in w for w in report.warnings)


def test_no_dataset_and_conflicting_validation(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path, {"a": {"file_name": "a.json"}}, {"a.json": ROWS * 3})
    with pytest.raises(DataError, match="no dataset to load"):
        load_examples(section(root, ""), "sft", 1)
    with pytest.raises(DataError, match="val_size and eval_dataset cannot both be set"):
        load(root, "a", val_size=0.1, eval_dataset="a")
    with pytest.raises(DataError, match="stage 'xyz' is unknown"):
        load(root, "a", stage="xyz")
