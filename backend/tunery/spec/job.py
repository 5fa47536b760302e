"""The job spec: one pydantic model, torch-free, that reads native (nested) or LLaMA-Factory (flat) keys."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunery.spec.base import Section
from tunery.spec.data import DataSection
from tunery.spec.errors import SpecError, SpecProblem
from tunery.spec.evaluation import EvaluationSection
from tunery.spec.export import ExportSection
from tunery.spec.generation import GenerationSection
from tunery.spec.method import MethodSection
from tunery.spec.model import ModelSection
from tunery.spec.training import TrainingSection

SECTIONS: dict[str, type[Section]] = {
    "model": ModelSection,
    "data": DataSection,
    "method": MethodSection,
    "training": TrainingSection,
    "generation": GenerationSection,
    "evaluation": EvaluationSection,
    "export": ExportSection,
}

#: Old or alternative spellings LLaMA-Factory and transformers accept.
ALIASES: dict[str, str] = {
    "evaluation_strategy": "eval_strategy",
    "lora_targets": "lora_target",
    "flash_attention": "flash_attn",
}


def _flat_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for section_name, section in SECTIONS.items():
        for key in section.model_fields:
            if key in index:
                raise RuntimeError(f"spec key {key!r} is defined in two sections")
            index[key] = section_name
    return index


FLAT_KEYS: dict[str, str] = _flat_index()


class JobSpec(BaseModel):
    """A training job. Build it with :meth:`from_mapping` (or :func:`load_spec`) to get LF key support."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelSection
    data: DataSection = Field(default_factory=DataSection)
    method: MethodSection = Field(default_factory=MethodSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    generation: GenerationSection = Field(default_factory=GenerationSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    export: ExportSection = Field(default_factory=ExportSection)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], source: str | None = None) -> JobSpec:
        """Validate a nested (``{"model": {...}}``) or flat LLaMA-Factory mapping; raise SpecError."""
        from tunery.spec.rules import apply_rules

        nested, problems = nest(raw)
        _export_file_defaults(nested)
        spec: JobSpec | None = None
        if not problems:
            try:
                spec = cls.model_validate(nested)
            except ValidationError as exc:
                problems = [_problem_from_pydantic(err) for err in exc.errors()]
        if spec is not None:
            problems = apply_rules(spec)
        if problems:
            raise SpecError(problems, source)
        assert spec is not None
        return spec

    def to_flat(self, *, exclude_defaults: bool = True) -> dict[str, Any]:
        """The LLaMA-Factory flat form (keys unchanged), for YAML export and diffs."""
        flat: dict[str, Any] = {}
        for name in SECTIONS:
            section: Section = getattr(self, name)
            flat.update(section.model_dump(mode="json", exclude_defaults=exclude_defaults))
        return flat

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_flat(), sort_keys=False, allow_unicode=True)


def _export_file_defaults(nested: dict[str, dict[str, Any]]) -> None:
    """LLaMA-Factory's export files (examples/merge_lora) name export_dir and no dataset nor do_train: such a file
    is an export job, which does not train (so the training rules, e.g. "dataset is required", do not apply)."""
    if (
        nested.get("export", {}).get("export_dir")
        and "do_train" not in nested.get("training", {})
        and not nested.get("data", {}).get("dataset")
    ):
        nested.setdefault("training", {})["do_train"] = False


def nest(raw: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[SpecProblem]]:
    """Turn flat LF keys (and/or nested sections) into the nested form; report unknown keys."""
    nested: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    problems: list[SpecProblem] = []
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                _place(nested, problems, str(sub_key), sub_value, expected_section=key)
        else:
            _place(nested, problems, str(key), value, expected_section=None)
    return {name: fields for name, fields in nested.items() if fields or name == "model"}, problems


def _place(
    nested: dict[str, dict[str, Any]],
    problems: list[SpecProblem],
    key: str,
    value: Any,
    expected_section: str | None,
) -> None:
    key = ALIASES.get(key, key)
    section = FLAT_KEYS.get(key)
    if section is None or (expected_section is not None and section != expected_section):
        problems.append(SpecProblem(key, _unknown_key_message(key, expected_section)))
        return
    nested[section][key] = value


def _unknown_key_message(key: str, section: str | None) -> str:
    candidates = list(SECTIONS[section].model_fields) if section else list(FLAT_KEYS)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    where = f" in section '{section}'" if section else ""
    if section and key in FLAT_KEYS:
        return f"unknown key{where}; it belongs to section '{FLAT_KEYS[key]}'"
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key{where}{hint}"


def _problem_from_pydantic(error: Any) -> SpecProblem:
    loc = [str(part) for part in error["loc"]]
    field = loc[1] if len(loc) > 1 and loc[0] in SECTIONS else ".".join(loc)
    if len(loc) > 2:
        field = ".".join(loc[1:])
    message = str(error["msg"])
    if error["type"] == "missing":
        message = "is required"
    elif "input" in error and not isinstance(error["input"], (dict, list)):
        message = f"{message} (got {error['input']!r})"
    return SpecProblem(field, message)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` command-line overrides; values are read as YAML scalars (1e-4, true, a,b)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SpecError([SpecProblem(pair, "override must look like key=value")], "command line")
        key, text = pair.split("=", 1)
        key = key.strip().split(".")[-1]
        overrides[key] = _scalar(text)
    return overrides


def _scalar(text: str) -> Any:
    """YAML scalar, plus the numbers YAML 1.1 leaves as strings (``1e-4``)."""
    if not text.strip():
        return None
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON job file into a mapping, with a clear error naming the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([SpecProblem("file", f"cannot read: {exc.strerror}")], str(file)) from exc
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError([SpecProblem("file", f"not valid YAML/JSON: {exc}")], str(file)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError([SpecProblem("file", "must contain a mapping of keys")], str(file))
    return data


def read_flat(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A job file's keys, flat, with ``key=value`` overrides applied (they win over the file); SpecError for
    unknown keys."""
    raw = read_spec_file(path)
    nested, problems = nest(raw)
    if problems:
        raise SpecError(problems, str(path))
    merged: dict[str, Any] = {k: v for fields in nested.values() for k, v in fields.items()}
    merged.update(parse_overrides(overrides or []))
    return merged


def load_spec(path: str | Path, overrides: list[str] | None = None) -> JobSpec:
    """Read a job file, apply ``key=value`` overrides (flat keys win over the file), validate."""
    return JobSpec.from_mapping(read_flat(path, overrides), source=str(path))
