"""dataset_info.json: which datasets exist, where their files are and how their columns are named.

Reads the file exactly as LLaMA-Factory 0.9.x does (same keys, same defaults, same source priority:
hf_hub_url / ms_hub_url / om_hub_url, then script_url, cloud_file_name, file_name).
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from tunery.engine.data.api import DataError

DATA_CONFIG = "dataset_info.json"

LoadFrom = Literal["hf_hub", "ms_hub", "om_hub", "script", "cloud_file", "file"]

COLUMN_KEYS = (
    "prompt", "query", "response", "history", "messages", "system", "tools",
    "images", "videos", "audios", "chosen", "rejected", "kto_tag",
)  # fmt: skip
TAG_KEYS = (
    "role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag",
)  # fmt: skip
ENTRY_KEYS = (
    "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "file_name", "file_sha1",
    "formatting", "ranking", "subset", "split", "folder", "num_samples", "revision", "columns", "tags",
)  # fmt: skip

#: The openai format names its keys like OpenAI chat messages unless dataset_info.json says otherwise.
OPENAI_DEFAULTS = {
    "messages": "messages", "role_tag": "role", "content_tag": "content", "user_tag": "user",
    "assistant_tag": "assistant", "observation_tag": "tool", "function_tag": "function_call",
    "system_tag": "system", "tools": "tools",
}  # fmt: skip


@dataclass
class DatasetAttr:
    """One dataset entry of dataset_info.json, with LLaMA-Factory's defaults filled in."""

    load_from: LoadFrom
    dataset_name: str  # file or folder name, hub id, script folder or cloud path
    name: str = ""  # the key in dataset_info.json (what users write in ``dataset:``)
    formatting: str = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    num_samples: int | None = None
    revision: str | None = None
    # columns
    system: str | None = None
    tools: str | None = None
    images: str | None = None
    videos: str | None = None
    audios: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None
    prompt: str | None = "instruction"
    query: str | None = "input"
    response: str | None = "output"
    history: str | None = None
    messages: str | None = "conversations"
    # sharegpt / openai tags
    role_tag: str | None = "from"
    content_tag: str | None = "value"
    user_tag: str | None = "human"
    assistant_tag: str | None = "gpt"
    observation_tag: str | None = "observation"
    function_tag: str | None = "function_call"
    system_tag: str | None = "system"
    # keys set in dataset_info.json (top level, columns, tags); the raw entry for fingerprints
    explicit: frozenset[str] = frozenset()
    entry: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return self.name or self.dataset_name

    def join(self, entry: dict[str, Any], where: str) -> list[str]:
        """Copy an entry's settings onto this attr; returns warnings about keys that are ignored."""
        from tunery.engine.data.formats import FORMATS

        warnings = [f"{where}: unknown key '{key}' is ignored" for key in entry if key not in ENTRY_KEYS]
        explicit = {key for key in entry if key in ENTRY_KEYS}
        self.formatting = _typed(entry, "formatting", str, "alpaca", where)
        if self.formatting not in FORMATS:
            known = ", ".join(sorted(FORMATS))
            raise DataError(f"{where}: formatting '{self.formatting}' is unknown; use one of: {known}")
        self.ranking = _typed(entry, "ranking", bool, False, where)
        self.subset = _typed(entry, "subset", str, None, where)
        self.split = _typed(entry, "split", str, "train", where)
        self.folder = _typed(entry, "folder", str, None, where)
        self.revision = _typed(entry, "revision", str, None, where)
        self.num_samples = _typed(entry, "num_samples", int, None, where)
        if self.num_samples is not None and self.num_samples <= 0:
            raise DataError(f"{where}: num_samples must be a positive number, got {self.num_samples}")
        if self.formatting == "openai":
            for key, value in OPENAI_DEFAULTS.items():
                setattr(self, key, value)
        for group, keys in (("columns", COLUMN_KEYS), ("tags", TAG_KEYS)):
            mapping = entry.get(group)
            if mapping is None:
                continue
            if not isinstance(mapping, dict):
                raise DataError(f"{where}: '{group}' must be an object mapping names, got {_kind(mapping)}")
            for key, value in mapping.items():
                if key not in keys:
                    warnings.append(f"{where}: unknown {group} key '{key}' is ignored")
                    continue
                if value is not None and not isinstance(value, str):
                    raise DataError(f"{where}: {group}.{key} must be a string, got {_kind(value)}")
                setattr(self, key, value)
                explicit.add(key)
        self.explicit = frozenset(explicit)
        self.entry = entry
        return warnings


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _typed(entry: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = entry.get(key)
    if value is None:  # absent or null: the default
        return default
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise DataError(f"{where}: '{key}' must be a {kind.__name__}, got {_kind(value)} ({value!r})")


def use_modelscope() -> bool:
    return os.getenv("USE_MODELSCOPE_HUB", "0").lower() in ("true", "y", "1")


def use_openmind() -> bool:
    return os.getenv("USE_OPENMIND_HUB", "0").lower() in ("true", "y", "1")


def read_dataset_info(dataset_dir: str) -> tuple[dict[str, Any], str]:
    """The parsed dataset_info.json of ``dataset_dir`` and its path."""
    if dataset_dir.startswith("REMOTE:"):
        from tunery.engine.data.hub import download_dataset_info

        path = download_dataset_info(dataset_dir[len("REMOTE:") :])
    else:
        path = os.path.join(dataset_dir, DATA_CONFIG)
    if not os.path.isfile(path):
        where = os.path.abspath(dataset_dir)
        raise DataError(
            f"{path} not found: dataset_dir '{dataset_dir}' (= {where}) must be the folder holding "
            f"{DATA_CONFIG} that describes your datasets; set dataset_dir to that folder"
        )
    try:
        with open(path, encoding="utf-8-sig") as handle:
            info = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read: {exc}") from exc
    if not isinstance(info, dict):
        raise DataError(f"{path}: must be a JSON object mapping dataset names to entries, got {_kind(info)}")
    return info, path


def attr_from_entry(name: str, entry: Any, where: str) -> tuple[DatasetAttr, list[str]]:
    """Build the attr of one entry (LLaMA-Factory's source priority)."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: must be an object, got {_kind(entry)}")
    has_hf, has_ms, has_om = ("hf_hub_url" in entry, "ms_hub_url" in entry, "om_hub_url" in entry)
    attr: DatasetAttr
    if has_hf or has_ms or has_om:
        if has_ms and (use_modelscope() or not has_hf):
            attr = DatasetAttr("ms_hub", entry["ms_hub_url"])
        elif has_om and (use_openmind() or not has_hf):
            attr = DatasetAttr("om_hub", entry["om_hub_url"])
        else:
            attr = DatasetAttr("hf_hub", entry["hf_hub_url"])
    elif "script_url" in entry:
        attr = DatasetAttr("script", entry["script_url"])
    elif "cloud_file_name" in entry:
        attr = DatasetAttr("cloud_file", entry["cloud_file_name"])
    elif "file_name" in entry:
        attr = DatasetAttr("file", entry["file_name"])
    else:
        raise DataError(f"{where}: needs 'file_name' (a file or folder next to {DATA_CONFIG}) or a hub url")
    if not isinstance(attr.dataset_name, str) or not attr.dataset_name:
        raise DataError(f"{where}: the file name / url must be a non-empty string")
    attr.name = name
    return attr, attr.join(entry, where)


def get_dataset_attrs(names: list[str] | None, dataset_dir: str) -> tuple[list[DatasetAttr], list[str]]:
    """Attrs of the named datasets (in order) and warnings about their entries."""
    names = names or []
    if not names:
        return [], []
    if dataset_dir == "ONLINE":  # every name is a hub dataset id
        load_from: LoadFrom = "ms_hub" if use_modelscope() else "om_hub" if use_openmind() else "hf_hub"
        return [DatasetAttr(load_from, name, name=name) for name in names], []
    info, path = read_dataset_info(dataset_dir)
    attrs, warnings = [], []
    for name in names:
        if name not in info:
            raise DataError(_unknown_name(name, list(info), path))
        attr, found = attr_from_entry(name, info[name], f"{path}: dataset '{name}'")
        attrs.append(attr)
        warnings.extend(found)
    return attrs, warnings


def _unknown_name(name: str, known: list[str], path: str) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        hint = "did you mean: " + ", ".join(close) + "?"
    elif known:
        hint = f"it defines {len(known)} datasets, e.g. " + ", ".join(sorted(known)[:5])
    else:
        hint = "it defines no dataset"
    if name.count("/") == 1 and not close:  # a hub id: LLaMA-Factory loads those only with dataset_dir ONLINE
        hint += (
            f"; to load the hub dataset '{name}' set dataset_dir to ONLINE (every dataset name is then a hub id) "
            f'or add an entry "{name}": {{"hf_hub_url": "{name}"}} to {DATA_CONFIG}'
        )
    return f"dataset '{name}' is not defined in {path}; {hint}"
