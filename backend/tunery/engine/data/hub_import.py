"""Copy one split of a hub dataset into a JSONL file (the platform's "import from hub" dataset versions).

The dataset is loaded exactly as a job would load it (``load_hub_dataset``: the hub's library and its
cache, the cache alone when the hub cannot be reached), then written in batches, so memory stays flat.
``progress`` hears about bytes landing in the hub's cache while downloading and rows while writing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunery.engine.data.api import DataError
from tunery.engine.data.hub import hf_hub_cache, load_hub_dataset, ms_cache, om_cache
from tunery.engine.data.registry import DatasetAttr, LoadFrom

HUBS: dict[str, LoadFrom] = {"hf": "hf_hub", "ms": "ms_hub", "om": "om_hub"}
BATCH_ROWS = 1000


@dataclass
class ImportProgress:
    phase: str  # downloading | writing | done
    bytes_done: int = 0
    rows_done: int = 0
    rows_total: int | None = None


ProgressFn = Callable[[ImportProgress], None]


@dataclass(frozen=True)
class ImportResult:
    rows: int
    size_bytes: int
    columns: list[str]


def hub_attr(hub: str, repo: str, subset: str | None, split: str, revision: str | None) -> DatasetAttr:
    if hub not in HUBS:
        raise DataError(f"hub must be one of {', '.join(HUBS)}, got '{hub}'")
    attr = DatasetAttr(HUBS[hub], repo, name=repo)
    attr.subset, attr.split, attr.revision = subset, split, revision
    return attr


def _repo_cache(attr: DatasetAttr, cache_dir: str | None) -> str:
    if attr.load_from == "hf_hub":
        return os.path.join(hf_hub_cache(), "datasets--" + attr.dataset_name.replace("/", "--"))
    root = ms_cache(cache_dir) if attr.load_from == "ms_hub" else om_cache(cache_dir)
    return os.path.join(root, *attr.dataset_name.split("/"))


def _folder_bytes(folder: str) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                try:
                    total += os.path.getsize(path)
                except OSError:
                    continue
    return total


class _DownloadWatch:
    """Reports the bytes the repository's cache folder grows by while the hub library downloads."""

    def __init__(self, folder: str, progress: ProgressFn, every: float) -> None:
        self.folder, self.progress, self.every = folder, progress, every
        self.start = _folder_bytes(folder)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hub-download-watch", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self.progress(ImportProgress("downloading", bytes_done=max(0, _folder_bytes(self.folder) - self.start)))

    def __enter__(self) -> _DownloadWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def grown(self) -> int:
        return max(0, _folder_bytes(self.folder) - self.start)


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str) + "\n"


def import_hub_dataset(
    attr: DatasetAttr,
    target: str,
    *,
    cache_dir: str | None = None,
    token: str | None = None,
    progress: ProgressFn | None = None,
    every: float = 0.5,
) -> ImportResult:
    """Write the attr's split to ``target`` (JSONL); raises DataError (nothing is left at ``target``)."""
    report = progress or (lambda _: None)
    report(ImportProgress("downloading"))
    with _DownloadWatch(_repo_cache(attr, cache_dir), report, every) as watch:
        loaded = load_hub_dataset(attr, cache_dir, streaming=False, tokens={attr.load_from: token})
    downloaded = watch.grown
    total = len(loaded) if hasattr(loaded, "__len__") else None
    columns = list(getattr(loaded, "column_names", None) or [])
    report(ImportProgress("writing", bytes_done=downloaded, rows_total=total))
    rows = 0
    partial = target + ".part"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            batches = loaded.iter(batch_size=BATCH_ROWS) if hasattr(loaded, "iter") else None
            if batches is None:
                raise DataError(f"dataset '{attr.dataset_name}': the hub returned no table ({type(loaded).__name__})")
            for batch in batches:
                keys = list(batch)
                count = len(batch[keys[0]]) if keys else 0
                handle.writelines(_json_line({key: batch[key][i] for key in keys}) for i in range(count))
                rows += count
                report(ImportProgress("writing", bytes_done=downloaded, rows_done=rows, rows_total=total))
        os.replace(partial, target)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    if rows == 0:
        os.remove(target)
        raise DataError(f"dataset '{attr.dataset_name}' (split '{attr.split}') has no rows")
    size = os.path.getsize(target)
    report(ImportProgress("done", bytes_done=downloaded, rows_done=rows, rows_total=rows))
    return ImportResult(rows=rows, size_bytes=size, columns=columns)
