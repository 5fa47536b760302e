"""Eval jobs from an ``EvaluationCreate``: the spec is built here, on the server, from served model ids,
project dataset names, the benchmark catalog and earlier eval jobs' predictions, then validated by JobSpec.

The model is resolved like ``/v1`` does (``served_models``): a base model's path, or a fine-tune's base path
plus its adapter (or its full model folder), with the template the fine-tune was trained with. Datasets go
into the job's data folder like a training job's, as ``eval_dataset``. Problems name the request's fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tunery.server.api.schemas.evaluations import EvaluationCreate
from tunery.server.auth.principal import Principal
from tunery.server.config import Settings
from tunery.server.db.models import DatasetVersion, EvalResult, Gpu, Job, JobKind, JobStatus
from tunery.server.services import jobs
from tunery.server.services.eval_catalog import find_benchmark, split_task
from tunery.server.services.job_inputs import JobInputError, Problem, resolve_datasets
from tunery.server.services.job_prepare import shape_problems
from tunery.server.services.served_models import resolve_with_base
from tunery.serving.errors import OpenAIError
from tunery.serving.types import ServeTarget
from tunery.spec import JobSpec, SpecError
from tunery.spec.evaluation import PREDICT_METRICS

#: spec keys -> the request field they come from (spec problems are reported under the request's names)
REQUEST_FIELDS: dict[str, str] = {
    "model_name_or_path": "model",
    "adapter_name_or_path": "model",
    "template": "model",
    "eval_dataset": "datasets",
    "dataset": "datasets",
    "max_samples": "max_samples",
    "eval_metrics": "metrics",
    "task": "task",
    "task_dir": "task",
    "lang": "lang",
    "n_shot": "n_shot",
    "judge_model": "judge.model",
    "judge_base_url": "judge.base_url",
    "judge_api_key_env": "judge.api_key_env",
    "judge_rubric": "judge.rubric",
    "judge_mode": "judge.mode",
    "judge_predictions": "judge_jobs",
    "infer_backend": "infer_backend",
    "use_cpu": "gpus",
    "do_predict": "kind",
    "predict_with_generate": "kind",
    "do_train": "kind",
    **{key: f"generation.{key}" for key in (
        "temperature", "top_p", "top_k", "max_new_tokens", "do_sample", "num_beams", "repetition_penalty"
    )},
}  # fmt: skip
#: the prediction files of an eval job whose results name none (LLaMA-Factory's name)
PREDICTIONS_FILE = "generated_predictions.jsonl"
#: environment variables the worker never passes to the engine (engine_process.engine_env)
HIDDEN_ENV_PREFIX = "TUNERY_"


def create_evaluation(
    session: Session, settings: Settings, principal: Principal, project_id: str, body: EvaluationCreate
) -> jobs.Outcome:
    """Check the request, build and validate the spec, write the job (not committed); JobInputError naming
    the request's fields when anything is wrong (nothing is written then)."""
    judging = body.kind == "judge" and bool(body.judge_jobs)
    problems = _applicability(body, judging)
    new = jobs.NewJob(project_id, {}, body.experiment_id, body.name, body.gpus, principal.user_id)
    jobs.check_experiment(session, new)

    judged: list[Path] = []
    first_judged: Job | None = None
    if judging:
        judged, first_judged, found = _judged_predictions(session, principal, settings, body)
        problems += found
    target, base_model_id, model_id = None, None, body.model
    if body.model is not None:
        target, base_model_id, found = _resolve_model(session, principal, settings, body.model)
        problems += found
    elif not judging:
        problems.append(Problem("model", "is required: a base model's name, ft:... or ft:...:ckpt-<step>"))
    datasets: dict[str, DatasetVersion] = {}
    if body.datasets:
        datasets, found = resolve_datasets(session, project_id, body.datasets, "datasets")
        problems += found + [Problem("datasets", p.message, dataset=p.dataset) for p in shape_problems("sft", datasets)]
    if body.kind == "benchmark" and body.task:
        problems += _benchmark_problems(settings, body)
    if problems:
        raise JobInputError(problems)

    if target is None and first_judged is not None:  # judging only: the judged run's model (never loaded)
        model_section = {
            key: value
            for key, value in first_judged.spec.get("model", {}).items()
            if key in ("model_name_or_path", "adapter_name_or_path")
        }
        template = first_judged.spec.get("data", {}).get("template")
        tool_format = None
        base_model_id = first_judged.base_model_id
        model_id = (first_judged.evaluation or {}).get("model")
    else:
        assert target is not None
        model_section = _model_section(target)
        template = target.template
        tool_format = target.tool_format
    use_cpu = _use_cpu(session, body, judging)
    spec = _parse(_build_spec(settings, body, model_section, (template, tool_format), judged, use_cpu))
    new.gpus = body.gpus if body.gpus is not None else (0 if use_cpu else 1)
    evaluation = {**body.model_dump(mode="json", exclude_none=True, exclude={"name", "gpus"}), "model": model_id}
    return jobs.insert_job(session, settings, new, spec, datasets, base_model_id, JobKind.EVAL, evaluation)


def _applicability(body: EvaluationCreate, judging: bool) -> list[Problem]:
    """Fields that do not apply to the request's kind (refused rather than ignored), and missing ones."""
    kind = body.kind
    predicting = kind == "predict" or (kind == "judge" and not judging)
    problems = []
    unused = {
        "datasets": not predicting and body.datasets,
        "max_samples": not predicting and body.max_samples is not None,
        "metrics": not predicting and body.metrics is not None,
        "generation": not predicting and body.generation is not None,
        "infer_backend": not predicting and body.infer_backend is not None,
        "task": kind != "benchmark" and body.task is not None,
        "lang": kind != "benchmark" and body.lang is not None,
        "n_shot": kind != "benchmark" and body.n_shot is not None,
        "judge": kind == "benchmark" and body.judge is not None,
        "judge_jobs": kind != "judge" and body.judge_jobs is not None,
    }
    what = "judging earlier eval jobs' predictions" if judging else f"kind {kind}"
    problems += [Problem(name, f"does not apply to {what}") for name, bad in unused.items() if bad]
    if predicting and not body.datasets:
        problems.append(Problem("datasets", "is required: name one or more of the project's datasets"))
    if kind == "benchmark" and not body.task:
        problems.append(Problem("task", "is required: '<benchmark>_<split>', e.g. mmlu_test (see the catalog)"))
    if kind == "judge" and body.judge is None:
        problems.append(Problem("judge", "is required: the judge's model and base_url"))
    if body.judge is not None:
        if judging and body.judge.mode == "pairwise" and len(body.judge_jobs or []) != 2:
            problems.append(Problem("judge_jobs", "pairwise judging compares two eval jobs: give their ids, A then B"))
        elif judging and body.judge.mode == "single" and len(body.judge_jobs or []) != 1:
            problems.append(Problem("judge_jobs", "single judging scores one eval job's predictions: give one id"))
        elif not judging and body.judge.mode == "pairwise":
            problems.append(Problem("judge_jobs", "pairwise judging compares two eval jobs: give their ids, A then B"))
        if body.judge.api_key_env and body.judge.api_key_env.upper().startswith(HIDDEN_ENV_PREFIX):
            problems.append(
                Problem("judge.api_key_env", f"{HIDDEN_ENV_PREFIX}* variables are not passed to jobs; use another name")
            )
    for metric in body.metrics or []:
        if metric not in PREDICT_METRICS:
            problems.append(Problem("metrics", f"unknown metric '{metric}'; known: {', '.join(PREDICT_METRICS)}"))
    return problems


def _resolve_model(
    session: Session, principal: Principal, settings: Settings, model_id: str
) -> tuple[ServeTarget | None, str | None, list[Problem]]:
    try:
        target, base_model_id = resolve_with_base(session, principal, settings, model_id)
    except OpenAIError as exc:
        return None, None, [Problem("model", exc.message)]
    if target.reward:
        return None, None, [Problem("model", f"'{model_id}' is a reward model: it scores answers, it writes none")]
    if target.engine == "gguf":
        merged = model_id.rsplit(":", 1)[0]
        message = (
            f"'{model_id}' is a GGUF file: evaluations run on model folders; evaluate the export's merged model "
            f"('{merged}', when it wrote one) or the fine-tune it came from"
        )
        return None, None, [Problem("model", message)]
    return target, base_model_id, []


def _model_section(target: ServeTarget) -> dict[str, Any]:
    section: dict[str, Any] = {"model_name_or_path": target.base_path}
    if target.adapter_path is not None:
        section["adapter_name_or_path"] = [target.adapter_path]
    return section


def _judged_predictions(
    session: Session, principal: Principal, settings: Settings, body: EvaluationCreate
) -> tuple[list[Path], Job | None, list[Problem]]:
    """The prediction files of the finished eval jobs to judge (each job's predict result, in order)."""
    files: list[Path] = []
    problems: list[Problem] = []
    first: Job | None = None
    for job_id in body.judge_jobs or []:
        try:
            job = jobs.visible_job(session, principal, job_id)
        except jobs.JobNotFound:
            problems.append(Problem("judge_jobs", f"job '{job_id}' not found"))
            continue
        first = first or job
        if job.kind != JobKind.EVAL or job.status != JobStatus.SUCCEEDED:
            problems.append(
                Problem("judge_jobs", f"job '{job_id}' is a {job.kind.value} job that is {job.status.value}; "
                        "give eval jobs that succeeded")
            )  # fmt: skip
            continue
        found = _predictions_of(session, settings, job)
        if not found:
            problems.append(Problem("judge_jobs", f"job '{job_id}' wrote no predictions"))
        elif len(found) > 1:
            problems.append(Problem("judge_jobs", f"job '{job_id}' has predictions of {len(found)} datasets; the "
                                    "judge reads one predictions file per job"))  # fmt: skip
        files += found
    return files, first, problems


def _predictions_of(session: Session, settings: Settings, job: Job) -> list[Path]:
    root = settings.storage_root
    stored = session.scalars(
        select(EvalResult.samples_file)
        .where(EvalResult.job_id == job.id, EvalResult.kind == "predict", EvalResult.samples_file.is_not(None))
        .order_by(EvalResult.name)
    ).all()
    paths = [root / path for path in stored if path]
    if not paths and job.output_dir:
        paths = [root / job.output_dir / PREDICTIONS_FILE]
    return [path for path in paths if path.resolve().is_relative_to(root.resolve()) and path.is_file()]


def _benchmark_problems(settings: Settings, body: EvaluationCreate) -> list[Problem]:
    assert body.task is not None
    name, split = split_task(body.task)
    benchmark = find_benchmark(settings, name)
    if benchmark is None:
        return [Problem("task", f"no benchmark '{name}' (a task is '<benchmark>_<split>'); see the catalog")]
    problems = []
    if split not in benchmark.splits:
        splits = ", ".join(benchmark.splits)
        problems.append(Problem("task", f"benchmark '{name}' has no split '{split}' (splits: {splits})"))
    if body.lang is not None and benchmark.languages and body.lang not in benchmark.languages:
        problems.append(Problem("lang", f"benchmark '{name}' has prompts in {', '.join(benchmark.languages)}"))
    return problems


def _use_cpu(session: Session, body: EvaluationCreate, judging: bool) -> bool:
    """Judging alone loads no model; otherwise the CPU when asked for no GPU or when no worker has one."""
    if judging or body.gpus == 0:
        return True
    return body.gpus is None and not session.scalar(select(func.count(Gpu.id)))


def _build_spec(
    settings: Settings,
    body: EvaluationCreate,
    model: dict[str, Any],
    template_and_tools: tuple[str | None, str | None],
    judged: list[Path],
    use_cpu: bool,
) -> dict[str, Any]:
    predicting = not judged and body.kind != "benchmark"
    template, tool_format = template_and_tools
    data: dict[str, Any] = {"template": template} if template else {}
    if template and tool_format:
        data["tool_format"] = tool_format  # the fine-tune's tool prompt
    training: dict[str, Any] = {"do_train": False, "use_cpu": use_cpu}
    evaluation: dict[str, Any] = {}
    generation: dict[str, Any] = {}
    if predicting:
        data |= {"eval_dataset": list(body.datasets or [])}
        if body.max_samples is not None:
            data["max_samples"] = body.max_samples
        training |= {"do_predict": True, "predict_with_generate": True}
        if body.metrics is not None:
            evaluation["eval_metrics"] = body.metrics
        if body.generation is not None:
            generation = body.generation.model_dump(exclude_none=True)
        if body.infer_backend is not None:
            model = {**model, "infer_backend": body.infer_backend}
    if body.kind == "benchmark":
        evaluation["task"] = body.task
        if settings.benchmark_dir is not None:
            evaluation["task_dir"] = str(settings.benchmark_dir)
        evaluation |= {key: value for key in ("lang", "n_shot") if (value := getattr(body, key)) is not None}
    if body.judge is not None:
        judge = body.judge
        evaluation |= {"judge_model": judge.model, "judge_base_url": judge.base_url, "judge_mode": judge.mode}
        if judge.api_key_env:
            evaluation["judge_api_key_env"] = judge.api_key_env
        if judge.rubric:
            evaluation["judge_rubric"] = judge.rubric
    if judged:
        evaluation["judge_predictions"] = [str(path) for path in judged]
    spec = {"model": model, "data": data, "training": training, "generation": generation, "evaluation": evaluation}
    return {section: values for section, values in spec.items() if values or section == "model"}


def _parse(spec: dict[str, Any]) -> JobSpec:
    try:
        return JobSpec.from_mapping(spec, source="evaluation")
    except SpecError as exc:
        problems = [_request_problem(problem.field, problem.message) for problem in exc.problems]
        raise JobInputError(problems) from exc


def _request_problem(field: str, message: str) -> Problem:
    key = field.split(".")[0]
    return Problem(REQUEST_FIELDS.get(key, field), message if key in REQUEST_FIELDS else f"{field}: {message}")
