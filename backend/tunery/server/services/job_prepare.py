"""Turn a submitted spec into what a job runs: validated, names resolved, paths owned by the server.

The spec's ``dataset_dir`` becomes the job's data folder (a dataset_info.json pointing at the registered
dataset versions), ``output_dir`` the job's output folder, ``model_name_or_path`` the registered model's
path. Paths on the server cannot be given through the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tunery.server.db.models import DatasetVersion, RegisteredModel
from tunery.server.services.datasets import stages_fed
from tunery.server.services.job_inputs import (
    JobInputError,
    Problem,
    display_file,
    resolve_datasets,
    resolve_model,
)
from tunery.spec import JobSpec, SpecError
from tunery.spec.stages import STAGES

#: Spec keys a job may not set through the API: server paths and secrets (section, key, what to do instead).
SERVER_PATHS: tuple[tuple[str, str, str], ...] = (
    ("training", "resume_from_checkpoint", "resume a job with POST /api/jobs/{id}/resume"),
    ("training", "logging_dir", "logs are kept by the server"),
    ("training", "deepspeed", "DeepSpeed configs are not supported through the API yet"),
    ("data", "tokenized_path", "tokenized data is cached by the server"),
    ("data", "media_dir", "media files are read next to the registered dataset files"),
    ("model", "cache_dir", "the model cache is configured on the server"),
    ("model", "adapter_name_or_path", "starting from adapters is not supported through the API yet"),
    ("model", "hf_hub_token", "job specs are readable by the whole project; give workers the token instead"),
    ("model", "ms_hub_token", "job specs are readable by the whole project; give workers the token instead"),
    ("model", "om_hub_token", "job specs are readable by the whole project; give workers the token instead"),
)
MAX_DATA_PROBLEMS = 50


@dataclass
class Resolved:
    spec: JobSpec
    model: RegisteredModel
    datasets: dict[str, DatasetVersion]  # spec name -> version (train and eval datasets)


def parse_spec(raw: Mapping[str, Any]) -> JobSpec:
    try:
        spec = JobSpec.from_mapping(raw, source="spec")
    except SpecError as exc:
        raise JobInputError([Problem(p.field, p.message) for p in exc.problems]) from exc
    problems = [
        Problem(key, f"cannot be set through the API: {why}")
        for section, key, why in SERVER_PATHS
        if getattr(getattr(spec, section), key) is not None
    ]
    problems += [
        Problem(key, "export keys cannot be given to a train or eval job: start an export with POST "
                "/api/projects/{id}/exports")
        for key in spec.export.model_dump(exclude_defaults=True)
    ]  # fmt: skip
    if spec.training.do_train and not spec.data.dataset:
        problems.append(Problem("dataset", "is required: name one or more of the project's datasets"))
    if problems:
        raise JobInputError(problems)
    return spec


def eval_kind_of(spec: JobSpec) -> str:
    """What a spec that does not train does, the way the eval runner dispatches: judge files, a benchmark, or
    predictions over eval_dataset."""
    if spec.evaluation.judge_predictions:
        return "judge"
    return "benchmark" if spec.evaluation.task else "predict"


def resolve(session: Session, project_id: str, spec: JobSpec) -> Resolved:
    """Registered model and dataset versions for the spec's names; JobInputError naming every unknown one."""
    problems: list[Problem] = []
    model = resolve_model(session, project_id, spec.model.model_name_or_path)
    if model is None:
        problems.append(
            Problem("model_name_or_path", f"model '{spec.model.model_name_or_path}' is not registered in this project")
        )
    tokenizer = spec.model.tokenizer_name_or_path
    tokenizer_model = resolve_model(session, project_id, tokenizer) if tokenizer else None
    if tokenizer and tokenizer_model is None:
        problems.append(Problem("tokenizer_name_or_path", f"model '{tokenizer}' is not registered in this project"))
    datasets, found = resolve_datasets(session, project_id, spec.data.dataset or [], "dataset")
    problems += found
    if spec.data.eval_dataset:
        eval_sets, found = resolve_datasets(session, project_id, spec.data.eval_dataset, "eval_dataset")
        datasets.update(eval_sets)
        problems += found
    problems += shape_problems(spec.method.stage, datasets)
    if problems:
        raise JobInputError(problems)
    assert model is not None
    spec.model.model_name_or_path = model.path_or_hub_id
    if tokenizer_model is not None:
        spec.model.tokenizer_name_or_path = tokenizer_model.path_or_hub_id
    if spec.data.template is None and model.template:
        spec.data.template = model.template
    return Resolved(spec, model, datasets)


def shape_problems(stage: str, versions: dict[str, DatasetVersion]) -> list[Problem]:
    """A problem for each dataset version whose rows do not have the shape ``stage`` needs (e.g. preference
    pairs given to sft), before any row is read."""
    problems = []
    for name, version in versions.items():
        fed = stages_fed(version.stage)
        if stage not in fed:
            problems.append(
                Problem(
                    "dataset",
                    f"dataset '{name}' (version {version.version}, checked for stage {version.stage}) cannot feed "
                    f"stage '{stage}'; it can feed: {', '.join(fed)}. Stage '{stage}' needs: {STAGES[stage].data_help}",
                    dataset=name,
                )
            )
    return problems


def place(spec: JobSpec, data_dir: Path, output_dir: Path) -> None:
    """Point the spec at the job's own folders (an export writes into its output folder)."""
    spec.data.dataset_dir = str(data_dir)
    spec.training.output_dir = str(output_dir)
    if spec.export.export_dir is not None:
        spec.export.export_dir = str(output_dir)


def validate_data(spec: JobSpec, datasets: dict[str, DatasetVersion], storage_root: Path) -> None:
    """Read every row of the job's datasets for its stage; JobInputError with dataset/file/row/field."""
    from tunery.engine.data.api import DataError
    from tunery.engine.data.load import validate_datasets

    try:
        report = validate_datasets(spec.data, spec.method.stage, max_errors=MAX_DATA_PROBLEMS)
    except DataError as exc:
        raise JobInputError([Problem("dataset", _hide_root(str(exc), storage_root), "invalid_data")]) from exc
    if not report.errors and report.rows_valid > 0:
        return
    problems = [
        Problem(
            error.field,
            error.message,
            "invalid_data",
            dataset=error.dataset,
            file=display_file(error.file, storage_root, datasets),
            row=error.row,
        )
        for error in report.errors[:MAX_DATA_PROBLEMS]
    ]
    hidden = max(report.error_count, len(report.errors)) - len(problems)
    if hidden > 0:
        problems.append(Problem("dataset", f"... and {hidden} more invalid rows", "invalid_data"))
    if not problems:
        problems.append(Problem("dataset", "the datasets hold no usable row", "invalid_data"))
    raise JobInputError(problems)


def _hide_root(message: str, storage_root: Path) -> str:
    return message.replace(str(storage_root.resolve()) + "/", "").replace(str(storage_root) + "/", "")
