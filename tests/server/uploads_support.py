"""Hand-built multipart bodies (exact file names, no client-side clean-up) and a file-tree snapshot."""

from __future__ import annotations

import json
import os
from pathlib import Path

BOUNDARY = "tunery-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"

ALPACA_ROWS = [
    {"instruction": "Say hi", "input": "", "output": "Hi!"},
    {"instruction": "Count to two", "input": "", "output": "1, 2"},
]
BAD_ROWS = [
    {"instruction": "Say hi", "input": "", "output": "Hi!"},
    {"instruction": "Count to two", "input": "", "output": 12},
    {"instruction": "no answer"},
]


def multipart(files: dict[str, bytes], fields: dict[str, str] | None = None) -> bytes:
    """A multipart/form-data body with ``files`` parts named exactly as given."""
    chunks: list[bytes] = []
    for key, value in (fields or {}).items():
        chunks.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    for name, data in files.items():
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        chunks.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(chunks)


def rows(data: list[dict[str, object]]) -> bytes:
    return json.dumps(data).encode()


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root`` (relative), to compare before and after a request."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found
