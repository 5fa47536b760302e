"""Reading data files into rows (dicts), keeping each row's 1-based number for error messages.

One reader per file type: JSON (array, JSON lines, or a single object), JSONL, CSV, Parquet, Arrow, TXT.
A row that cannot be parsed becomes a :class:`BadRow` in its place, so nothing is dropped silently.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tunery.engine.data.api import DataError
from tunery.engine.data.json_array import ArrayError, iter_array
from tunery.engine.data.jsonio import loads

#: File extension -> reader name, as LLaMA-Factory's FILEEXT2TYPE.
FILE_TYPES = {"json": "json", "jsonl": "jsonl", "csv": "csv", "parquet": "parquet", "arrow": "arrow", "txt": "text"}

ROW_FIELD = "(row)"  # the field named by errors about a whole row


@dataclass(frozen=True)
class BadRow:
    """A row that could not be parsed, in place of its dict."""

    field: str
    message: str


@dataclass
class RawFile:
    path: str
    rows: list[Any]  # dict, or BadRow
    numbers: Sequence[int]  # 1-based row number of each row (range(1, n + 1) for arrays)


Numbered = Iterator[tuple[int, Any]]


def file_type(path: str) -> str | None:
    return FILE_TYPES.get(os.path.splitext(path)[1][1:].lower())


def read_file(path: str) -> RawFile:
    """Every row of a file at once."""
    kind = file_type(path)
    if kind == "json":
        return _read_json(path)
    if kind == "jsonl":
        return _read_json_lines(path, _read_bytes(path))
    numbers, rows = [], []
    for number, row in iter_file(path):
        numbers.append(number)
        rows.append(row)
    return RawFile(path, rows, numbers)


def iter_file(path: str) -> Numbered:
    """Rows of a file read lazily, in chunks (JSON arrays item by item), so memory does not grow with the file."""
    kind = file_type(path)
    if kind is None:
        raise DataError(f"{path}: unsupported file type; use one of: " + ", ".join(f".{e}" for e in FILE_TYPES))
    if kind == "json":
        return _stream_json(path)
    return STREAMERS[kind](path)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def _object_row(value: Any) -> Any:
    return value if isinstance(value, dict) else BadRow(ROW_FIELD, f"expected a JSON object, got {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _read_json(path: str) -> RawFile:
    data = _read_bytes(path)
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"["):  # JSON lines saved as .json, or a single object
        try:
            single = loads(text)
        except ValueError:
            return _read_json_lines(path, data)
        return _from_document(path, single)
    try:
        document = loads(text)
    except json.JSONDecodeError as exc:
        line = exc.lineno + data[: len(data) - len(text)].count(b"\n")
        raise DataError(f"{path}: invalid JSON at line {line}, column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from exc
    return _from_document(path, document)


def _from_document(path: str, document: Any) -> RawFile:
    """An array is one row per item (a string item is {"text": item}); an object is a single row."""
    if isinstance(document, list):
        rows = [_array_item(item) for item in document]
        return RawFile(path, rows, range(1, len(document) + 1))
    return RawFile(path, [_object_row(document)], range(1, 2))


def _array_item(item: Any) -> Any:
    return item if type(item) is dict else {"text": item} if type(item) is str else _object_row(item)


def _stream_json(path: str) -> Numbered:
    """A JSON file's rows: an array item by item (``json_array.iter_array``); JSON lines or a single object whole."""
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        raw = _read_json(path)
        yield from zip(raw.numbers, raw.rows, strict=True)
        return
    try:
        for number, item in enumerate(iter_array(path), start=1):
            yield number, _array_item(item)
    except ArrayError as exc:
        raise DataError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def _parse_line(line: bytes) -> Any:
    try:
        return _object_row(loads(line))
    except json.JSONDecodeError as exc:
        return BadRow(ROW_FIELD, f"invalid JSON line: {exc.msg} (column {exc.colno})")
    except UnicodeDecodeError as exc:
        return BadRow(ROW_FIELD, f"line is not UTF-8 text: {exc.reason}")


def _read_json_lines(path: str, data: bytes) -> RawFile:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    numbers, rows = [], []
    for index, line in enumerate(data.split(b"\n")):
        if line.strip():
            numbers.append(index + 1)
            rows.append(_parse_line(line))
    return RawFile(path, rows, numbers)


def _stream_json_lines(path: str) -> Numbered:
    with open(path, "rb") as handle:
        for index, line in enumerate(handle):
            if index == 0 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if line.strip():
                yield index + 1, _parse_line(line)


def _stream_text(path: str) -> Numbered:
    """Plain text: one row {"text": line} per non-blank line (blank lines separate nothing)."""
    index = 0
    with open(path, encoding="utf-8-sig", newline="") as handle:
        try:
            for index, line in enumerate(handle):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield index + 1, {"text": line}
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text after line {index + 1}: {exc.reason}") from exc


def _stream_csv(path: str) -> Numbered:
    csv.field_size_limit(1 << 30)  # long documents in a cell (the default limit is 128 KiB)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                return
            width = len(header)
            start = reader.line_num + 1
            for values in reader:
                if values and any(values):
                    if len(values) == width:
                        yield start, dict(zip(header, values, strict=True))
                    else:
                        yield start, BadRow(ROW_FIELD, f"has {len(values)} values, the header has {width}")
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: unreadable CSV near line {reader.line_num}: {exc}") from exc


def _stream_batches(path: str, batches: Callable[[], Iterator[Any]]) -> Numbered:
    number = 0
    try:
        for batch in batches():
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (OSError, ValueError) as exc:  # pyarrow errors derive from these
        raise DataError(f"{path}: unreadable file: {exc}") from exc


def _stream_parquet(path: str) -> Numbered:
    pq = importlib.import_module("pyarrow.parquet")
    return _stream_batches(path, lambda: pq.ParquetFile(path).iter_batches(batch_size=8192))


def _stream_arrow(path: str) -> Numbered:
    pa = importlib.import_module("pyarrow")

    def batches() -> Iterator[Any]:
        with pa.memory_map(path) as source:
            try:  # datasets' save_to_disk writes the IPC stream format
                yield from pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                source.seek(0)
                reader = pa.ipc.open_file(source)
                for index in range(reader.num_record_batches):
                    yield reader.get_batch(index)

    return _stream_batches(path, batches)


STREAMERS: dict[str, Callable[[str], Numbered]] = {
    "jsonl": _stream_json_lines,
    "text": _stream_text,
    "csv": _stream_csv,
    "parquet": _stream_parquet,
    "arrow": _stream_arrow,
}
