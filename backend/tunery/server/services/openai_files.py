"""OpenAI files (purpose ``fine-tune``) stored as datasets of the caller's project.

Each file is a dataset named by its file id (``file-<hex>``) with one immutable version holding the
uploaded bytes (served back by ``/content``) and a dataset_info entry in the ``openai`` format. Chat JSONL
(``{"messages": [...], "tools": [...]}``) is read as uploaded; OpenAI's preference JSONL
(``{"input": {"messages", "tools"}, "preferred_output": [...], "non_preferred_output": [...]}``) is also
converted to a ranking file the engine reads. Every row is validated on upload; a file with bad rows is
refused with the file, row and field of each problem.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tunery.server.db.base import new_id
from tunery.server.db.models import Dataset, DatasetVersion
from tunery.server.errors import InvalidError, NotFoundError
from tunery.server.services import datasets
from tunery.server.storage import Storage
from tunery.server.uploads import StagedFile, StagedUpload

FILE_PREFIX = "file-"
PURPOSE = "fine-tune"
PAIRS_FILE = "preference_pairs.tunery.jsonl"
MAX_ERRORS = 50
CHAT_ENTRY: dict[str, Any] = {"formatting": "openai", "columns": {"messages": "messages", "tools": "tools"}}
PAIRS_ENTRY: dict[str, Any] = {
    "formatting": "openai",
    "ranking": True,
    "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected", "tools": "tools"},
}


@dataclass(frozen=True)
class RowProblem:
    file: str
    row: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "field": self.field, "message": self.message}


class FileRowsError(InvalidError):
    def __init__(self, filename: str, problems: list[RowProblem], total: int) -> None:
        first = "; ".join(f"row {p.row}, field '{p.field}': {p.message}" for p in problems[:3])
        more = f" (and {total - 3} more)" if total > 3 else ""
        super().__init__(
            f"{filename}: {total} invalid row(s): {first}{more}", {"errors": [p.as_dict() for p in problems]}
        )


def read_rows(path: Path, filename: str) -> tuple[list[tuple[int, dict[str, Any]]], list[RowProblem]]:
    """(line number, object) of every non-empty line, and problems for lines that are not JSON objects."""
    rows, problems = [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                problems.append(RowProblem(filename, number, "(line)", f"not valid JSON: {exc}"))
                continue
            if not isinstance(value, dict):
                problems.append(
                    RowProblem(filename, number, "(line)", f"expected a JSON object, got {type(value).__name__}")
                )
                continue
            rows.append((number, value))
    return rows, problems


def file_kind(rows: list[tuple[int, dict[str, Any]]], filename: str) -> str:
    """``chat`` or ``preference``, from the first row."""
    if not rows:
        raise InvalidError(f"{filename}: the file holds no JSON line")
    first = rows[0][1]
    if "messages" in first:
        return "chat"
    if "input" in first and ("preferred_output" in first or "non_preferred_output" in first):
        return "preference"
    raise InvalidError(
        f"{filename}, row {rows[0][0]}: neither chat format (a 'messages' list) nor OpenAI's preference format "
        "('input', 'preferred_output', 'non_preferred_output')"
    )


def _answer(
    row: dict[str, Any], key: str, number: int, filename: str
) -> tuple[dict[str, Any] | None, RowProblem | None]:
    value = row.get(key)
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        return None, RowProblem(filename, number, key, "expected a list with one assistant message")
    return value[0], None


def convert_preferences(
    rows: list[tuple[int, dict[str, Any]]], filename: str, target: Path
) -> tuple[list[int], list[RowProblem]]:
    """Write the ranking rows the engine reads; returns the original line of each written row."""
    lines, problems, out = [], [], []
    for number, row in rows:
        source = row.get("input")
        if not isinstance(source, dict) or not isinstance(source.get("messages"), list):
            problems.append(RowProblem(filename, number, "input.messages", "expected a list of messages"))
            continue
        chosen, problem = _answer(row, "preferred_output", number, filename)
        rejected, problem2 = _answer(row, "non_preferred_output", number, filename)
        if problem or problem2:
            problems += [p for p in (problem, problem2) if p is not None]
            continue
        converted = {"messages": source["messages"], "chosen": chosen, "rejected": rejected}
        if source.get("tools"):
            converted["tools"] = source["tools"]
        out.append(json.dumps(converted, ensure_ascii=False))
        lines.append(number)
    target.write_text("\n".join(out) + "\n", encoding="utf-8")
    return lines, problems


def validate_rows(folder: Path, entry: dict[str, Any], stage: str, filename: str, lines: list[int] | None) -> None:
    """Every row through the engine's openai format for ``stage``; FileRowsError naming row and field."""
    from tunery.engine.data.api import DataError
    from tunery.engine.data.load import validate_datasets
    from tunery.spec.data import DataSection

    name = "upload"
    (folder / "dataset_info.json").write_text(json.dumps({name: entry}), encoding="utf-8")
    try:
        report = validate_datasets(DataSection(dataset=[name], dataset_dir=str(folder)), stage, max_errors=MAX_ERRORS)
    except DataError as exc:
        raise InvalidError(f"{filename}: {str(exc).replace(str(folder) + '/', '')}") from exc
    finally:
        (folder / "dataset_info.json").unlink(missing_ok=True)
    if report.errors:
        problems = [
            RowProblem(filename, lines[e.row - 1] if lines and 0 < e.row <= len(lines) else e.row, e.field, e.message)
            for e in report.errors
        ]
        raise FileRowsError(filename, problems, max(report.error_count, len(problems)))
    if report.rows_valid == 0:
        raise InvalidError(f"{filename}: the file holds no usable row")


def check_upload(upload: StagedUpload) -> StagedFile:
    purpose = upload.fields.get("purpose")
    if purpose != PURPOSE:
        raise InvalidError(f"purpose must be '{PURPOSE}' (got {purpose!r}); only fine-tuning files are stored")
    if len(upload.files) != 1:
        raise InvalidError("send exactly one file, as the multipart part 'file'")
    return upload.files[0]


def store_file(session: Session, storage: Storage, project_id: str, upload: StagedUpload) -> DatasetVersion:
    """Validate the uploaded file and store it as a new dataset of the project (committed)."""
    item = check_upload(upload)
    assert upload.folder is not None
    folder, filename = upload.folder, item.name
    rows, problems = read_rows(folder / filename, filename)
    if problems:
        raise FileRowsError(filename, problems[:MAX_ERRORS], len(problems))
    kind = file_kind(rows, filename)
    if kind == "chat":
        stage, lines = "sft", None
        if not filename.endswith((".jsonl", ".json")):
            raise InvalidError(f"{filename}: name the file *.jsonl")
        entry = {"file_name": filename, **CHAT_ENTRY}
    else:
        stage = "dpo"
        lines, problems = convert_preferences(rows, filename, folder / PAIRS_FILE)
        if problems:
            raise FileRowsError(filename, problems[:MAX_ERRORS], len(problems))
        data = (folder / PAIRS_FILE).read_bytes()
        upload.files.append(StagedFile(PAIRS_FILE, len(data), hashlib.sha256(data).hexdigest()))
        entry = {"file_name": PAIRS_FILE, **PAIRS_ENTRY}
    validate_rows(folder, entry, stage, filename, lines)
    upload.fields["entry"] = json.dumps(entry)
    dataset = datasets.create_dataset(session, project_id, f"{FILE_PREFIX}{new_id()[:24]}", filename)
    version = datasets.add_version(session, storage, dataset, upload, stage)
    version.report = {"openai": {"filename": filename, "kind": kind, "bytes": item.size}, "stage": stage}
    version.rows_total = version.rows_valid = len(rows)
    version.status = "valid"
    datasets.commit_version(session, storage, version)
    return version


def file_object(version: DatasetVersion) -> dict[str, Any]:
    meta = version.report.get("openai", {})
    return {
        "id": version.dataset.name,
        "object": "file",
        "bytes": meta.get("bytes", version.size_bytes),
        "created_at": int(version.created_at.timestamp()),
        "filename": meta.get("filename", version.dataset.description or version.dataset.name),
        "purpose": PURPOSE,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def find_file(session: Session, project_ids: list[str], file_id: str) -> DatasetVersion:
    """The file's stored version in one of ``project_ids``; 404 (OpenAI's wording) otherwise."""
    if file_id.startswith(FILE_PREFIX):
        dataset = session.scalar(
            select(Dataset)
            .where(Dataset.project_id.in_(project_ids), Dataset.name == file_id)
            .options(selectinload(Dataset.versions))
        )
        if dataset is not None and dataset.versions:
            return dataset.versions[-1]
    raise NotFoundError(f"No such File object: {file_id}")


def list_files(
    session: Session, project_ids: list[str], limit: int, after: str | None, order: str
) -> tuple[list[DatasetVersion], bool]:
    query = (
        select(DatasetVersion)
        .join(Dataset)
        .where(Dataset.project_id.in_(project_ids), Dataset.name.startswith(FILE_PREFIX))
        .options(selectinload(DatasetVersion.dataset))
    )
    newest_first = order != "asc"
    key = (
        (DatasetVersion.created_at.desc(), DatasetVersion.id.desc())
        if newest_first
        else (DatasetVersion.created_at, DatasetVersion.id)
    )
    if after is not None:
        anchor = find_file(session, project_ids, after)
        if newest_first:
            query = query.where(
                (DatasetVersion.created_at < anchor.created_at)
                | ((DatasetVersion.created_at == anchor.created_at) & (DatasetVersion.id < anchor.id))
            )
        else:
            query = query.where(
                (DatasetVersion.created_at > anchor.created_at)
                | ((DatasetVersion.created_at == anchor.created_at) & (DatasetVersion.id > anchor.id))
            )
    rows = list(session.scalars(query.order_by(*key).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def content_path(storage: Storage, version: DatasetVersion) -> Path:
    meta = version.report.get("openai", {})
    return storage.path(version.storage_path, meta.get("filename") or version.info["file_name"])


def delete_file(session: Session, storage: Storage, version: DatasetVersion) -> None:
    datasets.delete_dataset(session, storage, version.dataset)
