"""Job files for download: an artifact's file, or a folder streamed as a zip (never leaving the root)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

CHUNK = 1024 * 1024


class _Sink(io.RawIOBase):
    """An unseekable stream that collects what zipfile writes until it is taken."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buffer += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def folder_files(folder: Path, root: Path, exclude: Sequence[Path] = ()) -> list[Path]:
    """Files under ``folder`` in a stable order; symlinks leading outside ``root`` are left out, and so is
    whatever lies in ``exclude`` (resolved files or folders: other artifacts inside this one)."""
    real_root = root.resolve()
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            real = path.resolve()
            if real.is_relative_to(real_root) and real.is_file() and not any(real.is_relative_to(e) for e in exclude):
                found.append(path)
    return found


def zip_folder(folder: Path, root: Path, exclude: Sequence[Path] = ()) -> Iterator[bytes]:
    """The folder as a zip archive (stored, zip64), produced while it is sent."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in folder_files(folder, root, exclude):
            info = zipfile.ZipInfo.from_file(path, path.relative_to(folder).as_posix())
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while block := source.read(CHUNK):
                    target.write(block)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
