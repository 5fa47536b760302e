"""The items of a top-level JSON array read from a file one at a time, in bounded memory.

LLaMA-Factory's datasets are mostly one big JSON array; parsing it whole holds every row as Python objects at
once (several times the file's size). The standard library's decoder parses one item at a time
(``raw_decode``) from a window of the file; no maintained JSON library both streams and is as fast here
(ijson's C backend is slower per row and not a dependency).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

#: Bytes read at a time; an item larger than the window makes it grow (doubling) until the item fits.
WINDOW = 1 << 20

_WHITESPACE = " \t\r\n"


class ArrayError(ValueError):
    """The file is not one well-formed JSON array (the message gives line and column)."""


class _Window:
    """Decoded text of the file from the current item on; knows the line and column where it starts."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line and column (1-based) of text[0]
        self.column = 1
        self.bytes_read = 0

    def close(self) -> None:
        self.handle.close()

    def more(self, at_least: int = WINDOW) -> bool:
        """Append at least ``at_least`` bytes of decoded text; False at the end of the file."""
        if self.eof:
            return False
        data = self.handle.read(max(at_least, WINDOW))
        try:
            self.text += self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise ArrayError(f"not UTF-8 text (byte {self.bytes_read + exc.start}): {exc.reason}") from exc
        self.bytes_read += len(data)
        self.eof = not data
        return bool(data)

    def skip_space(self) -> str | None:
        """The next non-blank character (not consumed), or None at the end of the file."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < len(text):
                return text[pos]
            if not self.more():
                return None

    def drop_consumed(self) -> None:
        """Forget the text before ``pos`` (keeping count of its lines for error positions)."""
        if self.pos < WINDOW:
            return
        consumed = self.text[: self.pos]
        newlines = consumed.count("\n")
        if newlines:
            self.line += newlines
            self.column = len(consumed) - consumed.rfind("\n")
        else:
            self.column += len(consumed)
        self.text = self.text[self.pos :]
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> ArrayError:
        at = self.pos if pos is None else pos
        before = self.text[:at]
        newlines = before.count("\n")
        line = self.line + newlines
        column = at - before.rfind("\n") if newlines else self.column + at
        return ArrayError(f"invalid JSON at line {line}, column {column}: {message}")


def iter_array(path: str) -> Iterator[Any]:
    """Each item of the JSON array that ``path`` holds; :class:`ArrayError` when the file is not one."""
    window = _Window(path)
    decode = json.JSONDecoder().raw_decode
    try:
        if window.skip_space() != "[":
            raise window.error("expected '['")
        window.pos += 1
        if window.skip_space() == "]":
            window.pos += 1
        else:
            while True:
                item = _item(window, decode)
                yield item
                window.drop_consumed()
                following = window.skip_space()
                if following == ",":
                    window.pos += 1
                    continue
                if following == "]":
                    window.pos += 1
                    break
                raise window.error("Expecting ',' delimiter" if following else "unexpected end of the file")
        if window.skip_space() is not None:
            raise window.error("Extra data")
    finally:
        window.close()


def _item(window: _Window, decode: Any) -> Any:
    """Parse the item at ``window.pos``; read more of the file while the item is cut off by the window's end."""
    while True:
        if window.skip_space() is None:
            raise window.error("unexpected end of the file")
        try:
            item, end = decode(window.text, window.pos)
        except json.JSONDecodeError as exc:
            if window.more(len(window.text)):  # maybe cut off: read on (doubling) and parse again
                continue
            raise window.error(exc.msg, exc.pos) from exc
        if end == len(window.text) and not window.eof and window.more():
            continue  # a number may go on in the next window ("12" | "34")
        window.pos = end
        return item
