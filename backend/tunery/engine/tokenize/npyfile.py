"""``.npy`` files written chunk by chunk and checksummed without mapping them.

Token arrays of millions of rows are appended as they are produced (numpy's ``np.save`` wants the whole
array in memory) and checksummed by reading the file (hashing a memory map would make every page of it count
in the process's resident memory). The files are ordinary ``.npy`` files: ``np.load(mmap_mode="r")`` reads them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

#: Fixed header size: the shape is only known at the end and is written into the same bytes.
HEADER_BYTES = 128
_MAGIC = b"\x93NUMPY\x01\x00"


def _header(dtype: np.dtype[Any], count: int) -> bytes:
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count,)})
    body_size = HEADER_BYTES - len(_MAGIC) - 2
    body = text.encode("latin1").ljust(body_size - 1) + b"\n"
    if len(body) != body_size:
        raise ValueError("npy header does not fit")
    return _MAGIC + body_size.to_bytes(2, "little") + body


class NpyAppender:
    """A 1-D ``.npy`` file of ``dtype`` that grows by :meth:`append`; :meth:`close` writes its final shape."""

    def __init__(self, path: Path, dtype: npt.DTypeLike) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self.digest = xxhash.xxh3_64()
        self._handle = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._handle.write(_header(self.dtype, 0))

    @classmethod
    def finished(cls, path: Path, like: NpyAppender) -> NpyAppender:
        """A closed appender for ``path``, a copy of ``like``'s finished file (same count and checksum)."""
        appender = cls.__new__(cls)
        appender.path, appender.dtype, appender.count, appender.digest = Path(path), like.dtype, like.count, like.digest
        appender._handle = like._handle  # closed: close() only reports the checksum
        return appender

    def append(self, values: npt.ArrayLike) -> None:
        array = np.ascontiguousarray(values, dtype=self.dtype)
        if array.size:
            data = array.data.cast("B")
            self._handle.write(data)
            self.digest.update(data)
            self.count += array.size

    def close(self) -> str:
        """Finish the file; return the xxh3-64 checksum of its data (as the cache's ``meta.json`` records it)."""
        if not self._handle.closed:
            self._handle.seek(0)
            self._handle.write(_header(self.dtype, self.count))
            self._handle.close()
        return str(self.digest.hexdigest())

    def abort(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


def data_checksum(path: Path, chunk: int = 1 << 23) -> tuple[str, list[int]]:
    """xxh3-64 of an ``.npy`` file's data and its shape, read in chunks (never mapped)."""
    digest = xxhash.xxh3_64()
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(handle)
        while block := handle.read(chunk):
            digest.update(block)
    return str(digest.hexdigest()), list(shape)


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` with ``source``'s content: a hard link where the file system allows, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        import shutil

        shutil.copyfile(source, target)
