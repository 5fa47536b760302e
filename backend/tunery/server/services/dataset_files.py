"""From uploaded files to a dataset version's contents: its dataset_info.json entry and its content hash.

The entry comes from (first match): an ``entry`` form field (a dataset_info.json entry as JSON); an uploaded
top-level ``dataset_info.json`` (the entry named by ``entry_name``, or its only entry); or, for a single
uploaded file, ``{"file_name": that file}``. The entry must name uploaded files only (no hub or script).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tunery.server.errors import InvalidError
from tunery.server.storage import UnsafePathError, check_relative
from tunery.server.uploads import StagedUpload

INFO_FILE = "dataset_info.json"
#: sources a stored version cannot use: it holds uploaded files only
REMOTE_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


def _uploaded_info(upload: StagedUpload, entry_name: str | None) -> dict[str, Any]:
    assert upload.folder is not None
    path = upload.folder / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise InvalidError(f"{INFO_FILE}: cannot be read as JSON: {exc}") from exc
    if not isinstance(info, dict) or not info:
        raise InvalidError(f"{INFO_FILE}: must be a JSON object naming at least one dataset")
    if entry_name is None:
        if len(info) != 1:
            raise InvalidError(f"{INFO_FILE} defines {len(info)} datasets; choose one with entry_name")
        entry_name = next(iter(info))
    if entry_name not in info:
        raise InvalidError(f"{INFO_FILE} has no dataset '{entry_name}' (it has: {', '.join(sorted(info)[:10])})")
    entry = info[entry_name]
    if not isinstance(entry, dict):
        raise InvalidError(f"{INFO_FILE}: dataset '{entry_name}' must be an object")
    return entry


def resolve_entry(upload: StagedUpload) -> dict[str, Any]:
    """The dataset_info.json entry of this upload, checked against its files."""
    names = {item.name for item in upload.files}
    if not names:
        raise InvalidError("no file uploaded: send the data files as multipart 'files' parts")
    if "entry" in upload.fields:
        try:
            entry = json.loads(upload.fields["entry"])
        except ValueError as exc:
            raise InvalidError(f"entry: not valid JSON: {exc}") from exc
        if not isinstance(entry, dict):
            raise InvalidError("entry: must be a JSON object (one dataset_info.json entry)")
    elif INFO_FILE in names:
        entry = _uploaded_info(upload, upload.fields.get("entry_name"))
    elif len(names) == 1:
        entry = {"file_name": next(iter(names))}
    else:
        raise InvalidError(
            "several files uploaded: send an 'entry' (its file_name may be a folder) or a dataset_info.json"
        )
    _check_entry(entry, names - {INFO_FILE})
    return entry


def _check_entry(entry: dict[str, Any], names: set[str]) -> None:
    remote = [key for key in REMOTE_KEYS if key in entry]
    if remote:
        raise InvalidError(f"entry: {remote[0]} is not supported here; upload the files and name them in file_name")
    file_name = entry.get("file_name")
    if not isinstance(file_name, str):
        raise InvalidError("entry: file_name (a string: an uploaded file or folder) is required")
    try:
        wanted = check_relative(file_name.rstrip("/")).as_posix()
    except UnsafePathError as exc:
        raise InvalidError(f"entry: file_name refused: {exc}") from exc
    if wanted not in names and not any(name.startswith(wanted + "/") for name in names):
        raise InvalidError(f"entry: file_name '{file_name}' is not among the uploaded files")
    entry["file_name"] = wanted


def content_hash(entry: dict[str, Any], upload: StagedUpload) -> str:
    """sha256 over the entry and every file's name and sha256: equal contents, equal hash."""
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for item in sorted(upload.files, key=lambda f: f.name):
        if item.name != INFO_FILE:
            digest.update(f"\n{item.name}\0{item.sha256}".encode())
    return digest.hexdigest()
