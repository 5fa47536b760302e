"""Hub datasets without a network: a Hugging Face cache prepared by the test (hub snapshots, a prepared Arrow
dataset). Cached datasets load offline (revision, subset, data folder and split honoured); uncached ones fail
at once with the dataset and the cache folders named."""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engine.data_support import jsonl, section, write_dataset_dir
from tunery.engine.data import hub
from tunery.engine.data.api import DataError
from tunery.engine.data.load import load_examples
from tunery.engine.data.registry import get_dataset_attrs, read_dataset_info
from tunery.engine.data.types import Example
from tunery.spec.data import DataSection

MAIN = "a" * 40
OLD = "b" * 40
README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train.jsonl
  - split: test
    path: data/test.jsonl
- config_name: small
  data_files:
  - split: train
    path: small/train.jsonl
---
# org/name
"""


def _rows(tag: str, n: int) -> list[dict[str, str]]:
    return [{"instruction": f"{tag} {i}", "output": "ok"} for i in range(n)]


def fake_snapshot(hub_cache: Path, repo: str, sha: str, files: dict[str, str], refs: tuple[str, ...] = ()) -> Path:
    """A repository snapshot laid out as huggingface_hub caches it (refs/<branch> -> commit folder)."""
    root = hub_cache / ("datasets--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / sha
    for name, text in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text(text, encoding="utf-8")
    for ref in refs:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(sha)
    return snapshot


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Caches under tmp_path and a hub endpoint where nothing listens (unreachable at once)."""
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", *hub.PROXY_VARS):
        monkeypatch.delenv(name, raising=False)
    fake_snapshot(
        cache / "hub",
        "org/name",
        MAIN,
        {
            "README.md": README,
            "data/train.jsonl": jsonl(_rows("main", 3)),
            "data/test.jsonl": jsonl(_rows("test", 2)),
            "small/train.jsonl": jsonl(_rows("small", 1)),
        },
        refs=("main",),
    )
    fake_snapshot(cache / "hub", "org/name", OLD, {"data/train.jsonl": jsonl(_rows("old", 4))}, refs=("v1",))
    return cache


def _texts(examples: Any) -> list[str]:
    return [example.prompt[0].content for example in examples if isinstance(example, Example)]


def _load(root: Path, entry: dict[str, Any], **options: Any) -> list[str]:
    write_dataset_dir(root, {"hubbed": entry}, {})
    return _texts(load_examples(section(root, "hubbed", **options), "sft", 1).train)


def test_cached_snapshot_loads_when_the_hub_is_unreachable(offline: Path, tmp_path: Path) -> None:
    assert _load(tmp_path / "d", {"hf_hub_url": "org/name"}) == ["main 0", "main 1", "main 2"]


def test_split_subset_revision_and_folder_are_honoured(offline: Path, tmp_path: Path) -> None:
    root = tmp_path / "d"
    assert _load(root, {"hf_hub_url": "org/name", "split": "test"}) == ["test 0", "test 1"]
    assert _load(root, {"hf_hub_url": "org/name", "subset": "small"}) == ["small 0"]
    assert _load(root, {"hf_hub_url": "org/name", "revision": "v1"}) == [f"old {i}" for i in range(4)]
    assert _load(root, {"hf_hub_url": "org/name", "revision": OLD}) == [f"old {i}" for i in range(4)]
    assert _load(root, {"hf_hub_url": "org/name", "revision": MAIN, "split": "test"}) == ["test 0", "test 1"]


def test_offline_mode_and_streaming_use_the_cache(
    offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "unreachable", lambda url: pytest.fail("offline mode must not probe the hub"))
    root = write_dataset_dir(tmp_path / "d", {"hubbed": {"hf_hub_url": "org/name", "split": "test"}}, {})
    loaded = load_examples(section(root, "hubbed", streaming=True), "sft", 1)
    assert _texts(loaded.train) == ["test 0", "test 1"]


def test_online_dataset_dir_reads_names_as_hub_ids(offline: Path) -> None:
    """LLaMA-Factory: with dataset_dir ONLINE every name in ``dataset`` is a hub id."""
    loaded = load_examples(DataSection(dataset=["org/name"], dataset_dir="ONLINE"), "sft", 1)
    assert _texts(loaded.train) == ["main 0", "main 1", "main 2"]


def test_hub_id_missing_from_dataset_info_says_how_to_load_it(tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path / "d", {"mine": {"file_name": "m.json"}}, {})
    with pytest.raises(DataError) as caught:
        get_dataset_attrs(["org/name"], str(root))
    message = str(caught.value)
    assert "dataset 'org/name' is not defined in" in message
    assert "set dataset_dir to ONLINE" in message and '"org/name": {"hf_hub_url": "org/name"}' in message


def test_uncached_fails_at_once_naming_dataset_and_caches(
    offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = importlib.import_module("datasets")
    probes: list[str] = []
    real = hub.unreachable

    def probe(url: str) -> str | None:
        probes.append(url)
        return real(url)

    monkeypatch.setattr(hub, "unreachable", probe)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail(f"no loading may start: {a}"))
    local = {"instruction": "q", "output": "a"}
    info = {"local": {"file_name": "l.json"}, "other": {"hf_hub_url": "org/other"}}
    root = write_dataset_dir(tmp_path / "d", info, {"l.json": [local]})
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        load_examples(section(root, "local,other"), "sft", 1)
    assert time.monotonic() - started < 10
    assert probes == ["http://127.0.0.1:9"]  # one probe, no retry loop
    message = str(caught.value)
    assert "dataset 'other' comes from the Hugging Face Hub (org/other)" in message
    assert "no connection to 127.0.0.1" in message and "not in the local cache" in message
    assert f"the hub cache {offline / 'hub'}" in message
    assert f"the datasets cache {offline / 'datasets'}" in message


def test_uncached_revision_is_named(offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = write_dataset_dir(tmp_path / "d", {"h": {"hf_hub_url": "org/name", "revision": "v9"}}, {})
    with pytest.raises(DataError, match=r"offline mode \(HF_HUB_OFFLINE\) is set, and it is not in the local cache at "
                       r"revision 'v9'"):  # fmt: skip
        load_examples(section(root, "h"), "sft", 1)


def test_cached_split_missing_from_snapshot_explains(offline: Path, tmp_path: Path) -> None:
    root = write_dataset_dir(tmp_path / "d", {"h": {"hf_hub_url": "org/name", "split": "validation"}}, {})
    with pytest.raises(DataError) as caught:
        load_examples(section(root, "h"), "sft", 1)
    message = str(caught.value)
    assert "the cached snapshot" in message and "validation" in message


def _prepared_arrow(datasets_cache: Path, repo: str, rows: list[dict[str, str]], tmp: Path) -> None:
    """An Arrow dataset as an earlier online ``load_dataset(repo)`` leaves it in the datasets cache."""
    Json = importlib.import_module("datasets.packaged_modules.json.json").Json
    source = tmp / "arrow_source.jsonl"
    source.write_text(jsonl(rows), encoding="utf-8")
    name = repo.split("/")[-1]
    builder = Json(cache_dir=str(datasets_cache), dataset_name=name, config_name="default",
                   data_files={"train": str(source)}, hash="0123abcd")  # fmt: skip
    builder.download_and_prepare()
    prepared = datasets_cache / repo.replace("/", "___")
    os.rename(datasets_cache / name, prepared)
    (config,) = [path for path in prepared.iterdir() if path.is_dir()]
    os.rename(config, prepared / "default")


def test_prepared_arrow_dataset_in_the_spec_cache_dir_loads_offline(offline: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "spec_cache"
    _prepared_arrow(cache_dir, "org/arrow", _rows("arrow", 2), tmp_path)
    root = write_dataset_dir(tmp_path / "d", {"a": {"hf_hub_url": "org/arrow"}}, {})
    loaded = load_examples(section(root, "a"), "sft", 1, cache_dir=str(cache_dir))
    assert _texts(loaded.train) == ["arrow 0", "arrow 1"]
    with pytest.raises(DataError, match=r"not in the local cache at revision 'v2'"):
        write_dataset_dir(root, {"a": {"hf_hub_url": "org/arrow", "revision": "v2"}}, {})
        load_examples(section(root, "a"), "sft", 1, cache_dir=str(cache_dir))


def test_remote_dataset_info_comes_from_the_hub_cache(offline: Path) -> None:
    info = {"x": {"hf_hub_url": "org/name"}}
    fake_snapshot(offline / "hub", "org/infos", MAIN, {"dataset_info.json": json.dumps(info)}, refs=("main",))
    assert read_dataset_info("REMOTE:org/infos")[0] == info
    with pytest.raises(DataError, match=r"'REMOTE:org/none'.*not in the hub cache"):
        read_dataset_info("REMOTE:org/none")


def test_import_writes_jsonl_with_progress(offline: Path, tmp_path: Path) -> None:
    from tunery.engine.data.hub_import import ImportProgress, hub_attr, import_hub_dataset

    seen: list[ImportProgress] = []
    target = tmp_path / "out.jsonl"
    result = import_hub_dataset(hub_attr("hf", "org/name", None, "test", None), str(target), progress=seen.append)
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert lines == _rows("test", 2) and result.rows == 2 and result.columns == ["instruction", "output"]
    assert result.size_bytes == target.stat().st_size
    assert seen[0].phase == "downloading" and seen[-1].phase == "done"
    assert any(p.phase == "writing" and p.rows_done == 2 and p.rows_total == 2 for p in seen)
    with pytest.raises(DataError, match=r"'org/none'.*not in the local cache"):
        import_hub_dataset(hub_attr("hf", "org/none", None, "train", None), str(tmp_path / "none.jsonl"))
    assert not (tmp_path / "none.jsonl").exists() and not (tmp_path / "none.jsonl.part").exists()


def test_import_reports_bytes_landing_in_the_hub_cache(
    offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the hub library downloads, the bytes its cache folder grows by are reported."""
    from tunery.engine.data import hub_import

    datasets = importlib.import_module("datasets")
    blobs = offline / "hub" / "datasets--org--big" / "blobs"

    def slow_download(attr: Any, cache_dir: Any, streaming: bool, tokens: Any) -> Any:
        blobs.mkdir(parents=True)
        for part in range(3):
            (blobs / f"part{part}.incomplete").write_bytes(b"x" * 1000)
            time.sleep(0.15)
        return datasets.Dataset.from_list(_rows("big", 5))

    monkeypatch.setattr(hub_import, "load_hub_dataset", slow_download)
    seen: list[hub_import.ImportProgress] = []
    attr = hub_import.hub_attr("hf", "org/big", None, "train", None)
    result = hub_import.import_hub_dataset(attr, str(tmp_path / "big.jsonl"), progress=seen.append, every=0.05)
    downloading = [p.bytes_done for p in seen if p.phase == "downloading"]
    assert downloading == sorted(downloading) and 0 < max(downloading) <= 3000
    assert seen[-1].bytes_done == 3000 and result.rows == 5
