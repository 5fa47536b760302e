"""``tokenized_path`` (LLaMA-Factory's key): the tokenized splits kept in a folder the user names.

As in LLaMA-Factory: when the folder holds tokenized data, it is used as it is and the dataset keys are not read
(a warning says so); otherwise the data is tokenized as usual and written there for later jobs. Tunery writes the
layout of its tokenized cache (``.npy`` arrays plus ``meta.json`` with their checksums, read first) and, for pt
and sft token rows, LLaMA-Factory's ``save_to_disk`` layout beside it, so LLaMA-Factory trains on the same rows.
A folder LLaMA-Factory wrote is read too (``lf_saved``): pt and sft rows, and rm/dpo/kto rows whose labels split
cleanly into prompt and answer; ppo/grpo need the prompts' text, which it does not keep.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tunery.engine.tokenize.cache import TOKEN_ROWS, CachedSplit, read_splits, split_kind, write_splits
from tunery.engine.tokenize.encode import Recipe
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.lf_saved import is_lf_folder, read_lf, write_lf
from tunery.engine.tokenize.rows import TokenRows


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
        if not is_lf_folder(folder):
            raise TokenizeError(
                f"tokenized_path {path} holds no tokenized data (no meta.json, no dataset_dict.json); delete it or "
                "name a new folder, and Tunery tokenizes the datasets and writes them there"
            )
        splits = _load_lf(path, folder, recipe)
    else:
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


def _load_lf(path: str, folder: Path, recipe: Recipe) -> dict[str, CachedSplit]:
    try:
        return read_lf(folder, recipe.stage, recipe.row_kind, recipe.options.cutoff_len)
    except TokenizeError as exc:
        raise TokenizeError(f"tokenized_path {path} holds LLaMA-Factory's save_to_disk output: {exc}") from exc
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise TokenizeError(
            f"tokenized_path {path} holds LLaMA-Factory's save_to_disk output that stage {recipe.stage} cannot "
            f"train on ({type(exc).__name__}: {exc}); delete it or name a new folder, and Tunery tokenizes the "
            "datasets and writes them there"
        ) from exc


def save(path: str, splits: Mapping[str, CachedSplit], key: str, recipe: Recipe | None = None) -> Path:
    """Write the splits into ``tokenized_path`` (replacing an empty folder): Tunery's layout, then for token rows
    LLaMA-Factory's beside it. Without ``recipe`` rows whose labels are their ids are taken for pretraining."""
    folder = write_splits(_folder(path), splits, key)
    if recipe is not None:
        pretraining, neat = recipe.stage == "pt", recipe.pack_mode == "neat"
    else:
        pretraining, neat = all(_pretraining_rows(split) for split in splits.values()), False
    write_lf(folder, splits, pretraining, neat)
    return folder


def _pretraining_rows(split: CachedSplit, step: int = 1 << 24) -> bool:
    """Token rows whose labels are their ids (compared in slices: the arrays may be memory-mapped)."""
    rows = split.rows
    if not isinstance(rows, TokenRows) or rows.position_ids is not None or len(rows.labels) != len(rows.input_ids):
        return False
    return all(
        np.array_equal(rows.labels[start : start + step], rows.input_ids[start : start + step])
        for start in range(0, len(rows.input_ids), step)
    )
