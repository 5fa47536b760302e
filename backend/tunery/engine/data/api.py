"""Data loading contract (to be completed by the data work)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tunery.engine.data.types import Example


@dataclass(frozen=True)
class RowError:
    dataset: str
    file: str
    row: int  # 1-based row (JSON array index + 1, JSONL/CSV/TXT line number)
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}, row {self.row}, field '{self.field}': {self.message}"


@dataclass
class ValidationReport:
    rows_total: int = 0
    rows_valid: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass
class LoadedData:
    train: list[Example] | Iterable[Example]  # an Iterable only when streaming
    eval: list[Example] | Iterable[Example] | None
    report: ValidationReport
    # content fingerprint of everything that shaped the examples (files' bytes + dataset attrs + options)
    fingerprint: str
