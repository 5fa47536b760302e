"""Where a dataset's rows come from: local files (a file or a folder), a hub dataset or a cloud file.

A :class:`Source` lists its files (for the content fingerprint) and reads their rows, whole or lazily.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import xxhash

from tunery.engine.data.api import DataError, HubTokens
from tunery.engine.data.readers import RawFile, file_type, iter_file, read_file
from tunery.engine.data.registry import DATA_CONFIG, DatasetAttr

#: Words that mark a file or folder as holding a split (as the datasets library infers splits).
SPLIT_WORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
ALL_SPLIT_WORDS = tuple(word for words in SPLIT_WORDS.values() for word in words)


@dataclass
class Source:
    attr: DatasetAttr
    files: list[str]  # local files, in reading order
    hub: Any = None  # a datasets Dataset / IterableDataset for hub datasets

    @property
    def hub_label(self) -> str:
        subset = f"/{self.attr.subset}" if self.attr.subset else ""
        return f"{self.attr.dataset_name}{subset} [{self.attr.split}]"

    def read(self) -> list[RawFile]:
        """Every row of every file."""
        if self.hub is not None:
            rows = self.hub.to_list() if hasattr(self.hub, "to_list") else list(self.hub)
            return [RawFile(self.hub_label, rows, range(1, len(rows) + 1))]
        return [read_file(path) for path in self.files]

    def iter_rows(self) -> Iterator[tuple[str, int, Any]]:
        """(file, row number, row) read lazily."""
        if self.hub is not None:
            for index, row in enumerate(self.hub):
                yield self.hub_label, index + 1, row
            return
        for path in self.files:
            for number, row in iter_file(path):
                yield path, number, row

    def update_digest(self, digest: xxhash.xxh3_128) -> None:
        """Feed the content of every file (or the hub dataset's fingerprint) into ``digest``."""
        if self.hub is not None:
            marker = getattr(self.hub, "_fingerprint", None) or repr(getattr(self.hub, "info", ""))
            digest.update(f"hub:{self.hub_label}:{marker}\n".encode())
            return
        for path in self.files:
            digest.update(f"file:{os.path.basename(path)}:{os.path.getsize(path)}\n".encode())
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)


def resolve_source(
    attr: DatasetAttr, dataset_dir: str, cache_dir: str | None, streaming: bool, tokens: HubTokens | None = None
) -> tuple[Source, list[str]]:
    """The source of a dataset and warnings (skipped files, ignored subset); ``tokens``: hub access tokens."""
    warnings: list[str] = []
    if attr.load_from in ("hf_hub", "ms_hub", "om_hub"):
        from tunery.engine.data.hub import load_hub_dataset

        return Source(attr, [], hub=load_hub_dataset(attr, cache_dir, streaming, tokens)), warnings
    if attr.load_from == "cloud_file":
        from tunery.engine.data.hub import download_cloud_file

        return Source(attr, [download_cloud_file(attr, cache_dir)]), warnings
    path = os.path.join(dataset_dir, os.path.expanduser(attr.dataset_name))
    key = "script_url" if attr.load_from == "script" else "file_name"
    if os.path.isdir(path):
        infer = attr.load_from == "script" or "split" in attr.explicit
        return Source(attr, _folder_files(attr, path, infer, warnings)), warnings
    if os.path.isfile(path):
        if attr.load_from == "script" and path.endswith(".py"):
            raise DataError(
                f"dataset '{attr.name}': {path} is a dataset loading script, which the datasets library no "
                "longer runs; convert the data to json/jsonl/csv/parquet files and point file_name at them"
            )
        if file_type(path) is None:
            raise DataError(
                f"dataset '{attr.name}': {path} has an unsupported type; use .json, .jsonl, "
                ".csv, .parquet, .arrow or .txt"
            )
        if "split" in attr.explicit and attr.split != "train":
            raise DataError(
                f"dataset '{attr.name}': split '{attr.split}' not found: {path} is a single file, "
                "which is the train split; remove 'split' or point file_name at a folder"
            )
        return Source(attr, [path]), warnings
    raise DataError(
        f"dataset '{attr.name}': {path} not found ({key} '{attr.dataset_name}' in "
        f"{os.path.join(dataset_dir, DATA_CONFIG)}; relative to dataset_dir '{dataset_dir}')"
    )


def _folder_files(attr: DatasetAttr, root: str, infer_split: bool, warnings: list[str]) -> list[str]:
    base = root
    if attr.folder:
        base = os.path.join(base, attr.folder)
        if not os.path.isdir(base):
            raise DataError(f"dataset '{attr.name}': folder '{attr.folder}' not found in {root}")
    if attr.subset:
        sub = os.path.join(base, attr.subset)
        if os.path.isdir(sub):
            base = sub
        else:
            warnings.append(f"dataset '{attr.name}': subset '{attr.subset}' is ignored, {base} has no such folder")
    found: list[str] = []
    for folder, dirs, names in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(folder, name) for name in sorted(names) if not name.startswith("."))
    files = []
    for path in found:
        if file_type(path):
            files.append(path)
        else:
            warnings.append(f"dataset '{attr.name}': {path} is skipped (not a data file type)")
    if infer_split:
        files = _split_files(attr, base, files)
    if not files:
        raise DataError(f"dataset '{attr.name}': {base} holds no .json/.jsonl/.csv/.parquet/.arrow/.txt file")
    return files


def _has_word(relative: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"(^|[-._/\\ ]){re.escape(word)}([-._/\\ ]|$)", relative) for word in words)


def _split_files(attr: DatasetAttr, base: str, files: list[str]) -> list[str]:
    """Files of ``attr.split`` when file or folder names carry split names; all files are 'train' otherwise."""
    relative = {path: os.path.relpath(path, base).lower() for path in files}
    words = SPLIT_WORDS.get(attr.split, (attr.split.lower(),))
    matched = [path for path in files if _has_word(relative[path], words)]
    if matched:
        return matched
    if attr.split == "train" and not any(_has_word(rel, ALL_SPLIT_WORDS) for rel in relative.values()):
        return files
    raise DataError(
        f"dataset '{attr.name}': no file of split '{attr.split}' in {base} "
        "(file or folder names must contain the split name, e.g. validation.jsonl)"
    )
