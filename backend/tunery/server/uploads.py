"""Streaming multipart uploads straight into a staging folder under the storage root.

File names are checked before a byte is written (no absolute paths, no ``..``); the size limit is checked
against Content-Length up front and while streaming. On any failure the staging folder is removed, so a
refused upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from tunery.server.errors import InvalidError, TooLargeError
from tunery.server.storage import Storage, UnsafePathError, check_relative

#: multipart framing and text fields allowed on top of the file bytes
OVERHEAD = 1024 * 1024
MAX_FIELD = 256 * 1024
MAX_PARTS = 1000


@dataclass
class StagedFile:
    name: str  # relative POSIX path inside the upload
    size: int
    sha256: str


@dataclass
class StagedUpload:
    folder: Path | None  # None when no file was sent
    files: list[StagedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.files)


class _Receiver:
    """python-multipart callbacks writing file parts into the staging folder."""

    def __init__(self, storage: Storage, limit: int) -> None:
        self.storage = storage
        self.limit = limit
        self.upload = StagedUpload(folder=None)
        self.total = 0
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._field: str | None = None
        self._data = bytearray()
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._current: StagedFile | None = None

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidError(f"too many parts (at most {MAX_PARTS})")
        self._disposition, self._field, self._current = b"", None, None
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InvalidError("a multipart part has no name")
        self._field = options[b"name"].decode("utf-8", "replace")
        if b"filename" not in options:
            return
        raw = options[b"filename"].decode("utf-8", "replace")
        try:
            name = check_relative(raw).as_posix()
        except UnsafePathError as exc:
            raise InvalidError(f"file name refused: {exc}") from exc
        if any(item.name == name for item in self.upload.files):
            raise InvalidError(f"file {name!r} is sent twice")
        if self.upload.folder is None:
            self.upload.folder = self.storage.new_staging()
        target = self.upload.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        self._file = target.open("xb")
        self._hash = hashlib.sha256()
        self._current = StagedFile(name, 0, "")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is None:
            if len(self._data) + len(chunk) > MAX_FIELD:
                raise InvalidError(f"form field {self._field!r} is longer than {MAX_FIELD} bytes")
            self._data.extend(chunk)
            return
        self.total += len(chunk)
        if self.total > self.limit:
            raise TooLargeError(f"upload larger than the limit of {self.limit} bytes")
        self._file.write(chunk)
        self._hash.update(chunk)
        if self._current is not None:
            self._current.size += len(chunk)

    def on_part_end(self) -> None:
        if self._file is None or self._current is None:
            if self._field is not None:
                self.upload.fields[self._field] = self._data.decode("utf-8", "replace")
            return
        self._file.close()
        self._file = None
        self._current.sha256 = self._hash.hexdigest()
        self.upload.files.append(self._current)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _boundary(request: Request) -> bytes:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise InvalidError("send the files as multipart/form-data")
    return options[b"boundary"]


async def receive_upload(request: Request, storage: Storage, limit: int) -> StagedUpload:
    """Parse the request body into a staging folder; the caller publishes or removes ``folder``."""
    boundary = _boundary(request)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + OVERHEAD:
        raise TooLargeError(f"upload larger than the limit of {limit} bytes")
    receiver = _Receiver(storage, limit)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            await run_in_threadpool(parser.write, chunk)
        parser.finalize()
    except BaseException as exc:
        receiver.close()
        if receiver.upload.folder is not None:
            storage.remove(receiver.upload.folder)
        if isinstance(exc, FormParserError):
            raise InvalidError("malformed multipart body") from exc
        raise
    return receiver.upload
