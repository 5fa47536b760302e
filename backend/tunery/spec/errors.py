"""Errors raised while reading a job spec."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecProblem:
    """One problem with a spec: the key path (e.g. ``training.learning_rate``) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SpecError(ValueError):
    """A spec that cannot be used; carries every problem found, not only the first."""

    def __init__(self, problems: list[SpecProblem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{where}invalid job spec\n{lines}")
