"""The torch-free job spec: what a training job is, and the events it emits."""

from tunery.spec.errors import SpecError, SpecProblem
from tunery.spec.job import JobSpec, load_spec, parse_overrides, read_spec_file

__all__ = ["JobSpec", "SpecError", "SpecProblem", "load_spec", "parse_overrides", "read_spec_file"]
