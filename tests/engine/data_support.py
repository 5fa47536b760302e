"""Helpers for the data tests: write a dataset folder (dataset_info.json + files) and load it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunery.engine.data.api import LoadedData
from tunery.engine.data.load import load_examples
from tunery.spec.data import DataSection


def write_dataset_dir(root: Path, info: dict[str, Any], files: dict[str, Any]) -> Path:
    """``files``: name -> str (written as is), bytes, or a JSON value (written as JSON)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return root


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def load(root: Path, names: str, stage: str = "sft", seed: int = 42, **options: Any) -> LoadedData:
    data = DataSection(dataset=names, dataset_dir=str(root), **options)
    return load_examples(data, stage, seed)


def section(root: Path, names: str, **options: Any) -> DataSection:
    return DataSection(dataset=names, dataset_dir=str(root), **options)
