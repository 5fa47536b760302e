"""Content-keyed cache of tokenized datasets, shared by jobs.

The key hashes everything that shapes the token rows: the data fingerprint (files' bytes and
dataset options), the template (name and how it renders a probe conversation), the tokenizer
(vocabulary, merges, special tokens) and the tokenization options. An entry is a folder of
``.npy`` arrays plus ``meta.json`` holding a checksum of every array; it is written under a
temporary name and renamed into place, and an entry that fails to load or verify is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

from tunery.engine.data.types import Message, Role
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.columns import COLUMNS, ColumnRows
from tunery.engine.tokenize.npyfile import NpyAppender, data_checksum, link_or_copy
from tunery.engine.tokenize.rows import TokenRows
from tunery.engine.tokenize.stats import TokenStats
from tunery.engine.tokenize.text import tokenizer_fingerprint

#: Bump when the stored layout or the encoding rules change, so old entries are not reused.
CACHE_VERSION = 1

_PROBE = [
    Message(Role.USER, "probe question"),
    Message(Role.FUNCTION, '{"name": "probe_tool", "arguments": {"x": 1}}'),
    Message(Role.OBSERVATION, '{"result": 2}'),
    Message(Role.ASSISTANT, "probe answer"),
]
_PROBE_TOOLS = '[{"name": "probe_tool", "description": "d", "parameters": {"type": "object", "properties": {}}}]'


def _probe(template: ChatTemplate, enable_thinking: bool | None) -> str:
    parts: list[str] = []
    for messages, system, tools in (
        (_PROBE[:1] + _PROBE[3:], None, None),
        (_PROBE, "probe system", _PROBE_TOOLS),
    ):
        try:
            parts.append(repr(template.render_turns(messages, system, tools, enable_thinking=enable_thinking)))
        except Exception as exc:  # a template without tool support still has a stable fingerprint
            parts.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(parts)


def template_fingerprint(template: ChatTemplate, enable_thinking: bool | None = True) -> str:
    fields = {
        "name": template.name,
        "class": type(template).__qualname__,
        "stop_words": list(template.stop_words),
        "default_system": template.default_system,
        "efficient_eos": bool(getattr(template, "efficient_eos", False)),
        "probe": _probe(template, enable_thinking),
        "jinja": getattr(template, "chat_template", None),
        "definition": None if hasattr(template, "tokenizer") else repr(template),
    }
    return xxhash.xxh3_128_hexdigest(json.dumps(fields, sort_keys=True, default=str).encode())


def cache_key(
    data_fingerprint: str,
    template: ChatTemplate | None,
    tokenizer: Any,
    options: Mapping[str, Any],
) -> str:
    """Key of a tokenized dataset: data + template + tokenizer + options (all content hashes)."""
    enable_thinking = options.get("enable_thinking", True)
    fields = {
        "version": CACHE_VERSION,
        "data": data_fingerprint,
        "template": template_fingerprint(template, enable_thinking) if template is not None else None,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "options": dict(options),
    }
    return xxhash.xxh3_128_hexdigest(json.dumps(fields, sort_keys=True, default=str).encode())


@dataclass
class CachedSplit:
    rows: TokenRows | ColumnRows
    stats: TokenStats


#: ``kind`` of a split in meta.json: token rows (pt, sft) or a kind of ``tokenize.columns`` rows.
TOKEN_ROWS = "tokens"


def _checksum(array: np.ndarray) -> str:
    return xxhash.xxh3_64_hexdigest(np.ascontiguousarray(array).data)


def read_meta(folder: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return meta


def read_splits(folder: Path, key: str | None = None) -> dict[str, CachedSplit]:
    """The splits stored in ``folder`` (checked against ``key`` when given); raises on a missing or damaged one.
    Arrays are memory-mapped; their checksums are verified by reading the files (not through the maps, which
    would make every page count in the process's resident memory)."""
    meta = read_meta(folder)
    if meta.get("version") != CACHE_VERSION or (key is not None and meta.get("key") != key):
        raise ValueError("tokenized data of another version or key")
    splits: dict[str, CachedSplit] = {}
    for split, info in meta["splits"].items():
        arrays: dict[str, np.ndarray] = {}
        for name, expected in info["arrays"].items():
            path = folder / f"{info['file']}.{name}.npy"
            checksum, shape = data_checksum(path)
            if shape != expected["shape"] or checksum != expected["xxh3"]:
                raise ValueError(f"array {split}.{name} is damaged")
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        kind = info.get("kind", TOKEN_ROWS)
        rows: TokenRows | ColumnRows
        if kind == TOKEN_ROWS:
            rows = TokenRows.from_arrays(arrays)
        elif kind in COLUMNS:
            rows = ColumnRows.from_arrays(kind, arrays)
        else:
            raise ValueError(f"split {split} has unknown kind {kind!r}")
        splits[split] = CachedSplit(rows, TokenStats.from_dict(info["stats"]))
    return splits


def split_kind(split: CachedSplit) -> str:
    """``tokens`` (pt/sft rows) or the ``tokenize.columns`` kind of a split's rows."""
    return split.rows.kind if isinstance(split.rows, ColumnRows) else TOKEN_ROWS


def _whole_file(array: np.ndarray) -> Path | None:
    """The ``.npy`` file a memory-mapped array is the whole data of (None for arrays in memory)."""
    if not isinstance(array, np.memmap) or array.filename is None:
        return None
    path = Path(array.filename)
    if path.suffix != ".npy" or not path.is_file():
        return None
    expected = array.offset + array.size * array.itemsize
    return path if path.stat().st_size == expected and array.flags.c_contiguous else None


class EntryWriter:
    """Writes one entry (a folder of splits) in a temporary folder beside ``final``; :meth:`commit` renames it
    into place. Arrays come whole (``add_split``) or are appended chunk by chunk (``appender`` + ``add_files``)."""

    def __init__(self, final: Path) -> None:
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
        self.meta: dict[str, Any] = {"version": CACHE_VERSION, "splits": {}}

    def _file(self) -> str:
        return f"s{len(self.meta['splits'])}"

    def appender(self, name: str, dtype: npt.DTypeLike) -> NpyAppender:
        """A file for array ``name`` of the next split added with :meth:`add_files`."""
        return NpyAppender(self.tmp / f"{self._file()}.{name}.npy", dtype)

    def link(self, name: str, finished: NpyAppender) -> NpyAppender:
        """A finished ``.npy`` file (e.g. of a row store) as array ``name`` of the next split, without copying."""
        target = self.tmp / f"{self._file()}.{name}.npy"
        link_or_copy(finished.path, target)
        linked = NpyAppender.finished(target, finished)
        return linked

    def add_files(self, split: str, kind: str, stats: TokenStats, appenders: Mapping[str, NpyAppender]) -> None:
        arrays = {}
        for name, appender in appenders.items():
            checksum = appender.close()
            arrays[name] = {"shape": [appender.count], "xxh3": checksum}
        self.meta["splits"][split] = {"file": self._file(), "kind": kind, "stats": stats.to_dict(), "arrays": arrays}

    def add_split(self, split: str, cached: CachedSplit) -> None:
        file = self._file()
        info: dict[str, Any] = {"file": file, "kind": split_kind(cached), "stats": cached.stats.to_dict()}
        info["arrays"] = {}
        for name, array in cached.rows.arrays().items():
            target = self.tmp / f"{file}.{name}.npy"
            source = _whole_file(array)
            if source is not None:  # already on disk (a cache entry): no pass through memory
                link_or_copy(source, target)
                checksum, _ = data_checksum(target)
            else:
                np.save(target, np.ascontiguousarray(array), allow_pickle=False)
                checksum = _checksum(array)
            info["arrays"][name] = {"shape": list(array.shape), "xxh3": checksum}
        self.meta["splits"][split] = info

    def commit(self, key: str, extra: Mapping[str, Any] | None = None) -> Path:
        try:
            self.meta["key"] = key
            self.meta.update(extra or {})
            (self.tmp / "meta.json").write_text(json.dumps(self.meta), encoding="utf-8")
            if self.final.exists():
                shutil.rmtree(self.final, ignore_errors=True)
            try:
                os.rename(self.tmp, self.final)
            except OSError:
                if not self.final.is_dir():  # another job finished the same entry first: keep theirs
                    raise
            return self.final
        finally:
            self.abort()

    def abort(self) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


def write_splits(
    final: Path, splits: Mapping[str, CachedSplit], key: str, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``splits`` into the folder ``final`` atomically (a temporary folder beside it, then a rename)."""
    writer = EntryWriter(final)
    try:
        for split, cached in splits.items():
            writer.add_split(split, cached)
    except BaseException:
        writer.abort()
        raise
    return writer.commit(key, extra)


class TokenCache:
    """Tokenized datasets under ``root/<key>/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> dict[str, CachedSplit] | None:
        """The cached splits, or None when missing; a damaged entry is removed and None returned."""
        folder = self.path(key)
        if not folder.is_dir():
            return None
        try:
            return read_splits(folder, key)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def store(self, key: str, splits: Mapping[str, CachedSplit], extra: Mapping[str, Any] | None = None) -> Path:
        """Write an entry atomically (temporary folder, then rename); return its folder. ``extra``: more keys
        for its ``meta.json`` (the data report)."""
        return write_splits(self.path(key), splits, key, extra)
