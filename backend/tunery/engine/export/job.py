"""Export job files (torch-free): ``tunery export`` reads the same job files as ``tunery train`` with other
defaults. An export job does not train (``do_train`` defaults to false; true is refused), needs
``export_dir`` (as LLaMA-Factory: "Please specify `export_dir` to save model") and writes there: the run's
``output_dir`` is ``export_dir``. An LF export file with ``export_quantization_bit`` and no
``export_formats`` asks for the GPTQ model only, as LF writes then."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunery.spec import JobSpec, SpecError
from tunery.spec.errors import SpecProblem
from tunery.spec.job import read_flat


def export_dir_problem(export_dir: str | None) -> SpecProblem | None:
    if export_dir:
        return None
    return SpecProblem("export_dir", "is required to export: the folder the exported files are written to")


def with_export_defaults(flat: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """``flat`` (LF keys) with the export job defaults filled in; SpecError when it cannot be an export."""
    values = dict(flat)
    problems = []
    if values.get("do_train"):
        problems.append(SpecProblem("do_train", "an export job does not train; train first, then export the run"))
    missing = export_dir_problem(values.get("export_dir"))
    if missing is not None:
        problems.append(missing)
    elif values.get("output_dir") not in (None, values["export_dir"]):
        problems.append(
            SpecProblem("output_dir", "an export writes to export_dir; remove output_dir or set it to export_dir")
        )
    if problems:
        raise SpecError(problems, source)
    values["do_train"] = False
    values["output_dir"] = values["export_dir"]
    if values.get("export_quantization_bit") is not None and "export_formats" not in values:
        values["export_formats"] = ["gptq"]
    return values


def load_export_spec(path: str | Path, overrides: list[str] | None = None) -> JobSpec:
    """Read an export job file, apply ``key=value`` overrides, fill the export defaults, validate."""
    return JobSpec.from_mapping(with_export_defaults(read_flat(path, overrides), str(path)), source=str(path))
