"""Converting one dataset's rows into examples, recording every bad row in the report."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from tunery.engine.data.api import DataError, RowError, ValidationReport
from tunery.engine.data.formats import FORMATS, Context, Converter, RowProblem
from tunery.engine.data.readers import ROW_FIELD, BadRow, RawFile
from tunery.engine.data.registry import DatasetAttr
from tunery.engine.data.types import Example, RowRef

FIRST_ERRORS = 10  # errors shown in a "no valid row" DataError
UNEXPECTED = (TypeError, ValueError, AttributeError, KeyError, IndexError)


def converter_for(attr: DatasetAttr, context: Context) -> Converter:
    return FORMATS[attr.formatting](attr, context)


class RowSink:
    """Collects one dataset's bad rows into the report (and keeps its first few for a DataError)."""

    def __init__(self, attr: DatasetAttr, report: ValidationReport) -> None:
        self.dataset = attr.name
        self.report = report
        self.first: list[RowError] = []
        self.bad = 0

    def error(self, file: str, row: int, field: str, message: str) -> None:
        error = RowError(self.dataset, file, row, field, message)
        self.bad += 1
        self.report.add_error(error)
        if len(self.first) < FIRST_ERRORS:
            self.first.append(error)

    def no_valid_row(self, checked: int) -> DataError:
        return DataError(f"dataset '{self.dataset}' has no valid row ({checked} rows checked)", self.first)


def convert_row(convert: Converter, sink: RowSink, file: str, number: int, row: object) -> Example | None:
    if type(row) is BadRow:
        sink.error(file, number, row.field, row.message)
        return None
    try:
        return convert(row, RowRef(sink.dataset, file, number))  # type: ignore[arg-type]
    except RowProblem as problem:
        sink.error(file, number, problem.field, problem.message)
    except UNEXPECTED as exc:  # a value of a shape no check foresaw: still a row error, never a crash
        sink.error(file, number, ROW_FIELD, f"cannot be converted ({type(exc).__name__}: {exc})")
    return None


def convert_files(
    attr: DatasetAttr,
    convert: Converter,
    files: list[RawFile],
    report: ValidationReport,
    positions: Sequence[int] | None = None,
) -> list[Example]:
    """Examples of every row (or of the rows at ``positions`` over all files, repeats allowed)."""
    sink = RowSink(attr, report)
    examples: list[Example] = []
    if positions is None:
        for raw in files:
            rows, numbers, path = raw.rows, raw.numbers, raw.path
            for index in range(len(rows)):
                row = rows[index]
                if type(row) is dict:
                    try:
                        examples.append(convert(row, RowRef(sink.dataset, path, numbers[index])))
                        continue
                    except RowProblem as problem:
                        sink.error(path, numbers[index], problem.field, problem.message)
                        continue
                    except UNEXPECTED:
                        pass  # converted again below, which records the error
                convert_row(convert, sink, path, numbers[index], row)
        checked = sum(len(raw.rows) for raw in files)
    else:
        starts = [0]
        for raw in files:
            starts.append(starts[-1] + len(raw.rows))
        done: dict[int, Example | None] = {}
        for position in positions:
            if position not in done:
                which = bisect_right(starts, position) - 1
                raw, index = files[which], position - starts[which]
                done[position] = convert_row(convert, sink, raw.path, raw.numbers[index], raw.rows[index])
            example = done[position]
            if example is not None:
                examples.append(example)
        checked = len(done)
    report.count_rows(attr.name, checked, checked - sink.bad)
    if checked - sink.bad == 0:
        raise sink.no_valid_row(checked)
    return examples
