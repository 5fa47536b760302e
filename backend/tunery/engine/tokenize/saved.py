"""``tokenized_path`` (LLaMA-Factory's key): the tokenized splits kept in a folder the user names.

As in LLaMA-Factory: when the folder holds tokenized data, it is used as it is and the dataset keys are not read
(a warning says so); otherwise the data is tokenized as usual and written there for later jobs. The folder has
the layout of the tokenized cache (``.npy`` arrays plus ``meta.json`` with their checksums); the
``save_to_disk`` folders LLaMA-Factory writes cannot be read (their columns differ), and are refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tunery.engine.tokenize.cache import TOKEN_ROWS, CachedSplit, read_splits, split_kind, write_splits
from tunery.engine.tokenize.encode import Recipe
from tunery.engine.tokenize.errors import TokenizeError


def _folder(path: str) -> Path:
    return Path(path).expanduser()


def has_saved_data(path: str | None) -> bool:
    """Whether ``tokenized_path`` names a folder with something in it (LLaMA-Factory's test)."""
    if not path:
        return False
    folder = _folder(path)
    return folder.is_dir() and any(folder.iterdir())


def load_saved(path: str, recipe: Recipe) -> dict[str, CachedSplit]:
    """The splits stored in ``tokenized_path``, checked to be rows this stage trains on."""
    folder = _folder(path)
    if not (folder / "meta.json").is_file():
        lf = (folder / "dataset_dict.json").is_file() or (folder / "dataset_info.json").is_file()
        what = "LLaMA-Factory's save_to_disk output, which Tunery cannot read" if lf else "not tokenized data"
        raise TokenizeError(
            f"tokenized_path {path} holds {what} (no meta.json); delete it or name a new folder, and Tunery "
            "tokenizes the datasets and writes them there"
        )
    try:
        splits = read_splits(folder)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise TokenizeError(
            f"tokenized_path {path}: the tokenized data cannot be read ({exc}); delete the folder to tokenize again"
        ) from exc
    if "train" not in splits:
        raise TokenizeError(f"tokenized_path {path} has no train split; delete the folder to tokenize again")
    wanted = recipe.row_kind or TOKEN_ROWS
    for name, split in splits.items():
        kind = split_kind(split)
        if kind != wanted:
            raise TokenizeError(
                f"tokenized_path {path}: split {name} holds {kind} rows, stage {recipe.stage} trains on {wanted} "
                "rows (the folder was written for another stage); name another folder"
            )
    return splits


def save(path: str, splits: Mapping[str, CachedSplit], key: str) -> Path:
    """Write the splits into ``tokenized_path`` (replacing an empty folder)."""
    return write_splits(_folder(path), splits, key)
