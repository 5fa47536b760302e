"""No silently ignored keys: every field of every spec section is read by code outside ``tunery/spec`` or refused by
a rule (the scan is ``tests/spec/key_usage.py``). The self-checks below show the scan really fails on a field that
nothing reads, and that it does not count reads it cannot tie to the spec."""

from __future__ import annotations

import importlib
import pkgutil
import re
import typing
from typing import Any

import pytest
from pydantic import BaseModel, create_model

import tunery.spec
from tests.spec.key_usage import Scan, ignored_keys, package_sources, rule_refusals
from tunery.spec import JobSpec, SpecError
from tunery.spec.job import SECTIONS
from tunery.spec.model import ModelSection

#: TEMPORARY: keys another helper is making real right now (issue 11). The lead removes entries at integration;
#: ``test_allowlist_is_still_needed`` fails as soon as an entry passes on its own.
TEMPORARY_ALLOWLIST: dict[tuple[str, str], str] = {
    # ("section", "key"): "who makes it real",
}

_UNSUPPORTED = re.compile(r"^UNSUPPORTED_[A-Z]+_OPTIONS$")


def unsupported_options() -> dict[str, dict[str, object]]:
    """Every ``UNSUPPORTED_*_OPTIONS`` dict of the spec package, by name."""
    found: dict[str, dict[str, object]] = {}
    for info in pkgutil.iter_modules(tunery.spec.__path__, "tunery.spec."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if _UNSUPPORTED.match(name) and isinstance(value, dict):
                found[name] = value
    return found


def unsupported_keys() -> set[str]:
    return {key for options in unsupported_options().values() for key in options}


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return package_sources()


@pytest.fixture(scope="module")
def ignored(sources: dict[str, str]) -> list[tuple[str, str]]:
    return ignored_keys(SECTIONS, sources, unsupported_keys())


@pytest.fixture(scope="module")
def made_up_scan(sources: dict[str, str]) -> Scan:
    """A scan of the package whose model section has one more field, ``made_up_key``, that no code knows."""
    return Scan(sources, _with_made_up_field())


def _synthetic_reads(scan: Scan, rel: str, code: str, **more: str) -> set[tuple[str, str]]:
    return scan.extended({rel: code, **more}).reads([rel])


def test_every_spec_key_is_read_or_refused(ignored: list[tuple[str, str]]) -> None:
    offending = [pair for pair in ignored if pair not in TEMPORARY_ALLOWLIST]
    listing = "\n".join(f"  - {section}.{key}" for section, key in offending)
    assert not offending, (
        f"{len(offending)} spec key(s) are read by no code outside tunery/spec and refused by no rule:\n{listing}\n"
        "Honour each (read it where it takes effect) or refuse the values it cannot honour with a "
        "SpecProblem('<key>', ...) in spec/rules*.py (or an UNSUPPORTED_*_OPTIONS entry)."
    )


def test_allowlist_is_still_needed(ignored: list[tuple[str, str]]) -> None:
    stale = sorted(pair for pair in TEMPORARY_ALLOWLIST if pair not in ignored)
    assert not stale, f"remove from TEMPORARY_ALLOWLIST (now read or refused): {stale}"
    unknown = [pair for pair in TEMPORARY_ALLOWLIST if pair[1] not in SECTIONS[pair[0]].model_fields]
    assert not unknown, f"TEMPORARY_ALLOWLIST names keys the spec does not have: {unknown}"


# ---- the scan itself ---------------------------------------------------------------------------------------


def _with_made_up_field() -> dict[str, type[BaseModel]]:
    """The real sections, the model section with one more field that no code knows."""
    patched = create_model("ModelSection", __base__=ModelSection, made_up_key=(int, 0))
    return {**SECTIONS, "model": patched}


def test_scan_reports_a_made_up_field(
    sources: dict[str, str], ignored: list[tuple[str, str]], made_up_scan: Scan
) -> None:
    found = ignored_keys(_with_made_up_field(), sources, unsupported_keys(), made_up_scan.reads())
    assert set(found) - set(ignored) == {("model", "made_up_key")}


_TYPED_READS = {
    "annotated parameter": "def f(spec: JobSpec) -> object:\n    return spec.model.made_up_key\n",
    "section parameter": "def f(model: ModelSection) -> object:\n    return model.made_up_key\n",
    "string annotation": "def f(model: 'ModelSection | None') -> object:\n    return model.made_up_key\n",
    "assigned name": "def f(spec: JobSpec) -> object:\n    m = spec.model\n    return m.made_up_key\n",
    "tuple assignment": "def f(spec: JobSpec) -> object:\n    d, m = spec.data, spec.model\n    return m.made_up_key\n",
    "a or b": "def f(spec: JobSpec, m: object) -> object:\n    x = m or spec.model\n    return x.made_up_key\n",
    "getattr": "def f(spec: JobSpec) -> object:\n    return getattr(spec.model, 'made_up_key')\n",
    "self attribute": (
        "class C:\n    def __init__(self, spec: JobSpec) -> None:\n        self.m = spec.model\n"
        "    def f(self) -> object:\n        return self.m.made_up_key\n"
    ),
    "dataclass field": (
        "class Inputs:\n    spec: JobSpec\n\n"
        "def f(inputs: Inputs) -> object:\n    return inputs.spec.model.made_up_key\n"
    ),
    "returned section": (
        "def section(spec: JobSpec) -> ModelSection:\n    return spec.model\n\n"
        "def f(spec: JobSpec) -> object:\n    return section(spec).made_up_key\n"
    ),
    "pass-through table": (
        "KEYS_SPEC_PASSTHROUGH = ('model.made_up_key',)\n\n"
        "def f(spec: JobSpec) -> dict[str, object]:\n"
        "    return {k: getattr(spec.model, k.split('.')[1]) for k in KEYS_SPEC_PASSTHROUGH}\n"
    ),
}


@pytest.mark.parametrize("code", list(_TYPED_READS.values()), ids=list(_TYPED_READS))
def test_scan_counts_reads_typed_as_the_section(made_up_scan: Scan, code: str) -> None:
    assert ("model", "made_up_key") in _synthetic_reads(made_up_scan, "engine/_synthetic.py", code)


_NOT_READS = {
    "untyped object": "def f(other) -> object:\n    return other.made_up_key\n",
    "another class": "def f(tokenizer: Tokenizer) -> object:\n    return tokenizer.made_up_key\n",
    "other section": "def f(spec: JobSpec) -> object:\n    return spec.data.made_up_key\n",
    "assignment target": "def f(spec: JobSpec) -> None:\n    spec.model.made_up_key = 1\n",
}


@pytest.mark.parametrize("code", list(_NOT_READS.values()), ids=list(_NOT_READS))
def test_scan_ignores_reads_it_cannot_tie_to_the_section(made_up_scan: Scan, code: str) -> None:
    tokenizer = "class Tokenizer:\n    x: int\n"
    reads = _synthetic_reads(made_up_scan, "engine/_synthetic.py", code, **{"engine/_tok.py": tokenizer})
    assert ("model", "made_up_key") not in reads


def test_reads_inside_the_spec_package_do_not_count(made_up_scan: Scan) -> None:
    code = "def f(spec: JobSpec) -> object:\n    return spec.model.made_up_key\n"
    assert ("model", "made_up_key") not in _synthetic_reads(made_up_scan, "spec/_synthetic.py", code)


def test_refusals_are_rule_problems_naming_the_key(sources: dict[str, str]) -> None:
    literal = "def r(spec):\n    return [SpecProblem('made_up_key', 'no')]\n"
    looped = "KEYS = ('made_up_key',)\n\ndef r(spec):\n    return [SpecProblem(key, 'no') for key in KEYS]\n"
    for code in (literal, looped):
        assert "made_up_key" in rule_refusals({**sources, "spec/rules_synthetic.py": code})
    # a SpecProblem outside spec/rules*.py is not a rule
    assert "made_up_key" not in rule_refusals({**sources, "engine/_synthetic.py": literal})


def test_a_pass_through_table_must_be_used_and_name_real_keys(made_up_scan: Scan) -> None:
    unused = "KEYS_SPEC_PASSTHROUGH = ('model.cache_dir',)\n"
    typo = "KEYS_SPEC_PASSTHROUGH = ('model.cache_dri',)\nprint(KEYS_SPEC_PASSTHROUGH)\n"
    for code in (unused, typo):
        with pytest.raises(AssertionError):
            _synthetic_reads(made_up_scan, "engine/_synthetic.py", code)


# ---- the refusal dicts refuse for real ----------------------------------------------------------------------


def _other_value(section: type[BaseModel], key: str, off: object) -> object:
    """A valid value of ``key`` that differs from ``off``."""
    if isinstance(off, bool):
        return not off
    annotation = section.model_fields[key].annotation
    candidates: list[Any] = []
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            candidates.extend(typing.get_args(arg))
        elif arg is int:
            candidates.append(4)
        elif arg is float:
            candidates.append(0.5)
        elif arg is str:
            candidates.append("x")
    return next(value for value in candidates if value != off and value is not None)


def _section_of(key: str) -> type[BaseModel]:
    return next(cls for cls in SECTIONS.values() if key in cls.model_fields)


@pytest.mark.parametrize("key", sorted(unsupported_keys()))
def test_unsupported_options_are_refused_by_name(key: str) -> None:
    off = next(options[key] for options in unsupported_options().values() if key in options)
    value = _other_value(_section_of(key), key, off)
    with pytest.raises(SpecError) as info:
        JobSpec.from_mapping({"model_name_or_path": "m", "dataset": "d", key: value})
    assert key in {problem.field for problem in info.value.problems}
