"""Streaming: datasets read lazily, converted row by row while training consumes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tunery.engine.data.api import ValidationReport
from tunery.engine.data.convert import UNEXPECTED, RowSink
from tunery.engine.data.formats import Converter, RowProblem
from tunery.engine.data.readers import ROW_FIELD, BadRow
from tunery.engine.data.sources import Source
from tunery.engine.data.types import Example, RowRef


class ExampleStream:
    """Examples read lazily; each iteration reads the files again (one pass per epoch)."""

    def __init__(self, factory: Callable[[], Iterator[Example]]) -> None:
        self._factory = factory

    def __iter__(self) -> Iterator[Example]:
        return self._factory()


class LazyDataset:
    """One dataset's examples, read lazily. Rows are counted in the report the first time they are read,
    so the report fills up as training reads the stream; a pass without any valid row is a DataError."""

    def __init__(self, source: Source, convert: Converter, report: ValidationReport, max_samples: int | None):
        self.source = source
        self.convert = convert
        self.report = report
        self.max_samples = max_samples
        self.sink = RowSink(source.attr, report)
        self.counted: dict[str, int] = {}  # file -> last row number counted in the report

    def __call__(self) -> Iterator[Example]:
        name, convert, sink = self.source.attr.name, self.convert, self.sink
        valid = taken = 0
        for path, number, row in self.source.iter_rows():
            if self.max_samples is not None and taken >= self.max_samples:
                break
            taken += 1
            new = number > self.counted.get(path, 0)
            if new:
                self.counted[path] = number
            example = None
            if type(row) is BadRow:
                if new:
                    sink.error(path, number, row.field, row.message)
            else:
                try:
                    example = convert(row, RowRef(name, path, number))
                except RowProblem as problem:
                    if new:
                        sink.error(path, number, problem.field, problem.message)
                except UNEXPECTED as exc:
                    if new:
                        sink.error(path, number, ROW_FIELD, f"cannot be converted ({type(exc).__name__}: {exc})")
            if new:
                self.report.count_rows(name, 1, 0 if example is None else 1)
            if example is not None:
                valid += 1
                yield example
        if valid == 0:
            raise sink.no_valid_row(taken)
