"""The format registry and the checks every format shares (text columns, system, tools, media, labels)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunery.engine.data.jsonio import loads
from tunery.engine.data.types import Example, Message, RowRef

if TYPE_CHECKING:
    from tunery.engine.data.formats.shapes import Shape
    from tunery.engine.data.registry import DatasetAttr

Converter = Callable[[dict[str, Any], RowRef], Example]
ConverterFactory = Callable[["DatasetAttr", "Context"], Converter]

FORMATS: dict[str, ConverterFactory] = {}

#: Placeholders that must appear once per media item (LLaMA-Factory's IMAGE/VIDEO/AUDIO_PLACEHOLDER).
PLACEHOLDERS = {
    "images": os.getenv("IMAGE_PLACEHOLDER", "<image>"),
    "videos": os.getenv("VIDEO_PLACEHOLDER", "<video>"),
    "audios": os.getenv("AUDIO_PLACEHOLDER", "<audio>"),
}
URL_PREFIXES = ("http://", "https://", "data:", "s3://", "gs://")


def register_format(name: str) -> Callable[[ConverterFactory], ConverterFactory]:
    def add(factory: ConverterFactory) -> ConverterFactory:
        if name in FORMATS:
            raise RuntimeError(f"format {name!r} is registered twice")
        FORMATS[name] = factory
        return factory

    return add


class RowProblem(Exception):
    """What is wrong with a row: the field (column, or path inside it) and a message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Context:
    """What shapes examples besides the row: the stage's shape and where media files live."""

    shape: Shape
    media_dir: str | None = None  # None: media paths are kept as they are (hub datasets)
    media_cache: dict[str, str | None] = field(default_factory=dict, repr=False)
    tools_cache: dict[str, str | None] = field(default_factory=dict, repr=False)

    def find_media(self, path: str) -> str | None:
        """The media file's path (media_dir joined as LLaMA-Factory does); None when it does not exist."""
        found = self.media_cache.get(path, "")
        if found != "":
            return found
        if self.media_dir is None or path.startswith(URL_PREFIXES):
            found = path
        else:
            joined = os.path.join(self.media_dir, path)
            found = joined if os.path.isfile(joined) else path if os.path.isfile(path) else None
        self.media_cache[path] = found
        return found


def kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def missing(column: str, row: dict[str, Any]) -> RowProblem:
    keys = ", ".join(list(row)[:8]) or "none"
    return RowProblem(column, f"missing column '{column}' (the row has: {keys}); map columns in dataset_info.json")


def required_text(row: dict[str, Any], column: str) -> str:
    try:
        value = row[column]
    except KeyError:
        raise missing(column, row) from None
    if type(value) is not str:
        raise RowProblem(column, f"expected a string, got {kind(value)}")
    return value


def optional_text(row: dict[str, Any], column: str | None) -> str | None:
    """A text column that may be absent or null (None then)."""
    if column is None:
        return None
    value = row.get(column)
    if value is None or type(value) is str:
        return value
    raise RowProblem(column, f"expected a string or null, got {kind(value)}")


def system_of(row: dict[str, Any], column: str | None) -> str | None:
    return optional_text(row, column) or None


def tools_of(row: dict[str, Any], column: str | None, context: Context) -> str | None:
    """The tool list as a JSON string (checked to be a JSON array), or None."""
    if column is None:
        return None
    value = row.get(column)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        cache = context.tools_cache
        if value in cache:
            return cache[value]
        try:
            parsed = loads(value)
        except ValueError as exc:
            raise RowProblem(column, f"tools is not valid JSON: {exc}") from None
        if not isinstance(parsed, list):
            raise RowProblem(column, f"tools must be a JSON array of tool definitions, got {kind(parsed)}")
        if len(cache) >= 4096:
            cache.clear()
        cache[value] = value  # kept as written, "[]" too: LLaMA-Factory renders a system block for it
        return value
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    raise RowProblem(column, f"tools must be a JSON array (or its JSON text), got {kind(value)}")


def kto_label_of(row: dict[str, Any], column: str | None, required: bool) -> bool | None:
    if column is None:
        return None
    value = row.get(column)
    if type(value) is bool:
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if required:
        raise RowProblem(column, f"the KTO label must be true or false, got {kind(value)}")
    return None


def check_answer(answer: Message, field: str, what: str = "the answer") -> None:
    """An answer that is trained or compared must have text (an empty one teaches nothing)."""
    if not answer.content.strip():
        raise RowProblem(field, f"{what} is empty")


def no_text(field: str, columns: list[str]) -> RowProblem:
    """A row whose every text column (``columns``) is empty, reported on ``field``."""
    listed = ", ".join(f"'{column}'" for column in columns)
    return RowProblem(field, f"the row has no text ({listed} all empty)")


def check_pair(chosen: Message, rejected: Message, chosen_field: str, rejected_field: str) -> None:
    """A preference pair: two non-empty answers that differ (equal ones carry no preference)."""
    check_answer(chosen, chosen_field, "the chosen answer")
    check_answer(rejected, rejected_field, "the rejected answer")
    if chosen == rejected:
        raise RowProblem(
            rejected_field, "the rejected answer equals the chosen one; a preference pair needs two different answers"
        )


def media_of(row: dict[str, Any], column: str | None, context: Context) -> list[str]:
    if column is None:
        return []
    value = row.get(column)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    found = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            item = item["path"]
        if not isinstance(item, str):
            raise RowProblem(f"{column}[{index}]", f"expected a file path or URL, got {kind(item)}")
        path = context.find_media(item)
        if path is None:
            where = f" (looked in media_dir {context.media_dir})" if context.media_dir else ""
            raise RowProblem(f"{column}[{index}]", f"file not found: {item}{where}")
        found.append(path)
    return found


def check_placeholders(attr: DatasetAttr, example: Example) -> None:
    """Each media item needs its placeholder (e.g. <image>) in the conversation, as LLaMA-Factory checks."""
    if attr.images is None and attr.videos is None and attr.audios is None:
        return
    for key, token in PLACEHOLDERS.items():
        column = getattr(attr, key)
        if column is None:
            continue
        items: list[str] = getattr(example, key)
        shown = example.prompt + example.response[:1]
        count = sum(message.content.count(token) for message in shown)
        if count != len(items):
            raise RowProblem(column, f"{len(items)} {key} but {count} {token} placeholders in the conversation")
