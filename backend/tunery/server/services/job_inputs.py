"""What a job reads, resolved against the project: registered datasets (by name, ``name@version`` pins one)
and registered base models; and the per-job data folder the engine is pointed at."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from tunery.server.db.models import Dataset, DatasetVersion, RegisteredModel
from tunery.server.errors import InvalidError


@dataclass(frozen=True)
class Problem:
    """One reason a job cannot be created; ``file``/``row``/``dataset`` are set for bad data rows."""

    field: str
    message: str
    kind: str = "invalid_spec"  # invalid_spec | invalid_data
    dataset: str | None = None
    file: str | None = None
    row: int | None = None


class JobInputError(InvalidError):
    """The spec or its data cannot be used (HTTP 422); nothing was queued or written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        kind = "data" if any(p.kind == "invalid_data" for p in problems) else "spec"
        summary = "; ".join(_describe(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"invalid {kind}: {summary}{more}", {"errors": [asdict(p) for p in problems]})


def _describe(problem: Problem) -> str:
    where = f"{problem.file}, row {problem.row}, field '{problem.field}'" if problem.file else problem.field
    return f"{where}: {problem.message}"


def split_pin(name: str) -> tuple[str, int | None]:
    """``"alpaca@3"`` -> ("alpaca", 3); ``"alpaca"`` -> ("alpaca", None) (the newest version)."""
    base, sep, version = name.rpartition("@")
    if sep and base and version.isdigit():
        return base, int(version)
    return name, None


#: version states without files: a hub import that is running or failed
UNUSABLE = ("importing", "failed")


def resolve_datasets(
    session: Session, project_id: str, names: list[str], field: str
) -> tuple[dict[str, DatasetVersion], list[Problem]]:
    """The dataset version each spec name stands for, and problems for names the project lacks."""
    found: dict[str, DatasetVersion] = {}
    problems: list[Problem] = []
    wanted = {split_pin(name)[0] for name in names}
    datasets = {
        dataset.name: dataset
        for dataset in session.scalars(
            select(Dataset)
            .where(Dataset.project_id == project_id, Dataset.name.in_(wanted))
            .options(selectinload(Dataset.versions))
        )
    }
    for name in names:
        base, pin = split_pin(name)
        dataset = datasets.get(base)
        if dataset is None or not dataset.versions:
            problems.append(Problem(field, f"dataset '{base}' is not registered in this project"))
            continue
        # a hub import still running (or failed) has no files yet: never the default, refused when pinned
        versions = {version.version: version for version in dataset.versions if version.status not in UNUSABLE}
        if not versions:
            problems.append(Problem(field, f"dataset '{base}' has no imported version yet"))
            continue
        chosen = versions.get(pin) if pin is not None else versions[max(versions)]
        if chosen is None:
            known = ", ".join(str(number) for number in sorted(versions))
            problems.append(Problem(field, f"dataset '{base}' has no usable version {pin} (versions: {known})"))
            continue
        found[name] = chosen
    return found, problems


def resolve_model(session: Session, project_id: str, name: str) -> RegisteredModel | None:
    """The registered model with this name (or, failing that, this path / hub id) the project may use: its
    own first, then one shared with every project."""
    candidates = session.scalars(
        select(RegisteredModel).where(
            or_(RegisteredModel.project_id == project_id, RegisteredModel.project_id.is_(None)),
            or_(RegisteredModel.name == name, RegisteredModel.path_or_hub_id == name),
        )
    ).all()
    ranked = sorted(candidates, key=lambda model: (model.name != name, model.project_id is None, model.created_at))
    return ranked[0] if ranked else None


def write_data_dir(storage_root: Path, target: Path, versions: dict[str, DatasetVersion]) -> None:
    """A dataset_info.json in ``target`` naming each version's files by a path relative to ``target``."""
    info: dict[str, Any] = {}
    for name, version in versions.items():
        entry = dict(version.info)
        folder = storage_root / version.storage_path
        if isinstance(entry.get("file_name"), str):
            entry["file_name"] = os.path.relpath(folder / entry["file_name"], target)
        info[name] = entry
    target.mkdir(parents=True, exist_ok=False)
    (target / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def display_file(path: str, storage_root: Path, versions: dict[str, DatasetVersion]) -> str:
    """A data file as users know it (inside their dataset version), never a server path."""
    real = os.path.normpath(os.path.abspath(path))
    for version in versions.values():
        folder = os.path.normpath(str(storage_root / version.storage_path))
        if real.startswith(folder + os.sep):
            return os.path.relpath(real, folder)
    return os.path.basename(real)
