"""The storage root: every file the service writes lives under it, joined only through ``safe_join``."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path, PurePosixPath

#: characters refused in stored names: NUL and other control characters, backslashes
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_PART = 255
MAX_PATH = 1024
STAGING = ".staging"


class UnsafePathError(ValueError):
    """A path that is absolute, climbs out with ``..``, or leaves the root through a symlink."""


def check_relative(name: str) -> PurePosixPath:
    """``name`` as a relative POSIX path of plain parts; raises UnsafePathError otherwise."""
    if not name or len(name) > MAX_PATH:
        raise UnsafePathError(f"path {name!r} must have 1 to {MAX_PATH} characters")
    if _BAD_CHARS.search(name):
        raise UnsafePathError(f"path {name!r} contains a backslash or a control character")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafePathError(f"path {name!r} is absolute; give a path relative to the dataset")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePathError(f"path {name!r} has an empty, '.' or '..' part")
        if len(part) > MAX_PART:
            raise UnsafePathError(f"path {name!r} has a part longer than {MAX_PART} characters")
    return PurePosixPath(*parts)


def safe_join(root: Path, *parts: str) -> Path:
    """``root / parts`` after checking every part; refuses results a symlink takes outside ``root``."""
    path = root
    for part in parts:
        path = path / check_relative(part)
    real_root = root.resolve()
    if not path.resolve().is_relative_to(real_root):
        raise UnsafePathError(f"path {'/'.join(parts)!r} leads outside the storage root")
    return path


class Storage:
    """Files under ``root``: staging folders for uploads, then immutable folders moved into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        (self.root / STAGING).mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        return safe_join(self.root, *parts)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def new_staging(self) -> Path:
        """A fresh, empty folder for one upload (``remove`` it, or ``publish`` it)."""
        self.ensure()
        folder = self.root / STAGING / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def publish(self, staging: Path, *parts: str) -> Path:
        """Move a staging folder to ``parts`` (must not exist) and make its files read-only."""
        target = self.path(*parts)
        if target.exists():
            raise FileExistsError(f"{self.relative(target)} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        for folder, _dirs, files in os.walk(target):
            for name in files:
                os.chmod(os.path.join(folder, name), 0o444)
        return target

    def remove(self, path: Path) -> None:
        """Delete a file or folder under the root (missing is fine)."""
        if not path.resolve().is_relative_to(self.root.resolve()) or path.resolve() == self.root.resolve():
            raise UnsafePathError(f"refusing to delete {path}: not inside the storage root")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
