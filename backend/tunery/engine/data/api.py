"""Data loading contract: row errors, the validation report, the loaded data and the data error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tunery.engine.data.types import Example

#: ``load_from`` (hf_hub, ms_hub, om_hub) -> the access token for that hub (the spec's ``*_hub_token`` keys).
HubTokens = Mapping[str, str | None]


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
class DatasetCount:
    """Rows read and rows kept for one dataset."""

    rows_total: int = 0
    rows_valid: int = 0


@dataclass
class ValidationReport:
    rows_total: int = 0
    rows_valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    # exact number of invalid rows, also when ``errors`` is capped by ``max_errors``
    error_count: int = 0
    # keep at most this many RowError objects (None: keep all)
    max_errors: int | None = None
    # dataset_info.json oddities that do not stop loading (unknown keys, skipped files)
    warnings: list[str] = field(default_factory=list)
    by_dataset: dict[str, DatasetCount] = field(default_factory=dict)

    def count_rows(self, dataset: str, total: int, valid: int) -> None:
        self.rows_total += total
        self.rows_valid += valid
        counts = self.by_dataset.setdefault(dataset, DatasetCount())
        counts.rows_total += total
        counts.rows_valid += valid

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if self.max_errors is None or len(self.errors) < self.max_errors:
            self.errors.append(error)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


@dataclass
class LoadedData:
    train: list[Example] | Iterable[Example]  # an Iterable only when streaming
    eval: list[Example] | Iterable[Example] | None
    report: ValidationReport  # when streaming it fills up while the iterables are read
    # content fingerprint of everything that shaped the examples (files' bytes + dataset attrs + options)
    fingerprint: str
    # eval_on_each_dataset: one eval set per eval dataset name (``eval`` then holds them all)
    eval_by_dataset: dict[str, list[Example] | Iterable[Example]] | None = None


class DataError(ValueError):
    """Data that cannot be used: a missing or unknown dataset, an unreadable file, no valid row."""

    def __init__(self, message: str, errors: list[RowError] | None = None) -> None:
        self.errors = errors or []
        shown = "".join(f"\n  - {error}" for error in self.errors[:10])
        more = len(self.errors) - 10
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(message + shown)
