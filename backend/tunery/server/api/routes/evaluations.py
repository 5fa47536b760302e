"""Evaluations: start eval jobs, list them with their results, browse and diff their samples, the catalog."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from tunery.server.api.deps import PrincipalDep, ProjectMember, ProjectViewer, SessionDep, SettingsDep
from tunery.server.api.schemas.base import ErrorBody, ModelResponse
from tunery.server.api.schemas.evaluations import (
    EVAL_KINDS,
    JUDGE_MODES,
    BenchmarkInfoPublic,
    EvalDiffPage,
    EvalResultPublic,
    EvalSamplePage,
    EvaluationCatalog,
    EvaluationCreate,
    EvaluationRunPage,
    MetricInfoPublic,
)
from tunery.server.api.schemas.jobs import JobPublic
from tunery.server.db.models import Job, JobKind, JobStatus
from tunery.server.idempotency import IdempotencyDep
from tunery.server.services import eval_results, jobs
from tunery.server.services.eval_catalog import list_benchmarks
from tunery.server.services.eval_jobs import create_evaluation
from tunery.server.services.job_listing import SUMMARY_FIELDS, JobFilter, list_job_summaries
from tunery.spec.eval_metrics import METRICS
from tunery.spec.evaluation import PREDICT_METRICS

router = APIRouter(tags=["evaluations"])

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "Not found, or in a project you are not a member of."}}
INVALID: Responses = {422: {"model": ErrorBody, "description": "Invalid: ``errors`` or ``param`` name the field."}}
FORBIDDEN: Responses = {403: {"model": ErrorBody, "description": "Your role in the project does not allow this."}}


@router.post(
    "/api/projects/{project_id}/evaluations",
    status_code=status.HTTP_201_CREATED,
    response_model=JobPublic,
    responses={**NOT_FOUND, **FORBIDDEN, **INVALID},
)
def create_evaluation_route(
    body: EvaluationCreate,
    access: ProjectMember,
    session: SessionDep,
    settings: SettingsDep,
    idem: IdempotencyDep,
) -> JobPublic:
    """Queue an eval job (kind ``eval``): the server builds its spec from the model id, the project's datasets,
    the benchmark catalog and the judged jobs. Nothing is queued or stored when the request is invalid."""
    outcome = create_evaluation(session, settings, access.principal, access.project_id, body)
    out = idem.remember(session, status.HTTP_201_CREATED, JobPublic.model_validate(outcome.job))
    jobs.commit(session, settings, outcome)
    return out


@router.get(
    "/api/projects/{project_id}/evaluations", response_model=EvaluationRunPage, responses={**NOT_FOUND, **INVALID}
)
def list_evaluations(
    access: ProjectViewer,
    session: SessionDep,
    status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    experiment_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ModelResponse:
    """The project's eval jobs, newest first, each with the model evaluated and its results so far."""
    where = JobFilter([access.project_id], status_ or (), experiment_id, kinds=[JobKind.EVAL])
    rows, next_cursor = list_job_summaries(session, where, cursor, limit, Job.evaluation)
    results = eval_results.results_of(session, [row.id for row in rows])
    items: list[dict[str, Any]] = []
    for row in rows:
        summary = dict(zip(SUMMARY_FIELDS, row, strict=False))
        asked = row.evaluation or {}
        items.append(
            {
                "job": summary,
                "model": asked.get("model"),
                "kind": asked.get("kind", "predict"),
                "results": results[row.id],
                "request": asked,
            }
        )
    return ModelResponse(EvaluationRunPage.model_validate({"items": items, "next_cursor": next_cursor}))


@router.get("/api/jobs/{job_id}/eval-results", response_model=list[EvalResultPublic], responses=NOT_FOUND)
def job_eval_results(job_id: str, session: SessionDep, principal: PrincipalDep) -> list[EvalResultPublic]:
    """The job's results (one per dataset, benchmark or judge pass), by name."""
    jobs.visible_job(session, principal, job_id)
    return [EvalResultPublic.model_validate(row) for row in eval_results.results_of(session, [job_id])[job_id]]


@router.get("/api/jobs/{job_id}/eval-samples", response_model=EvalSamplePage, responses={**NOT_FOUND, **INVALID})
def job_eval_samples(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    result: Annotated[str | None, Query(description="The result's name; default: the job's only one.")] = None,
    sort: Annotated[eval_results.Sort, Query(description="index, or worst / best first by the metric.")] = "index",
    metric: Annotated[str | None, Query(description="Default: the first catalog metric the rows score.")] = None,
    q: Annotated[str | None, Query(max_length=500, description="Text in the prompt, label or answers.")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EvalSamplePage:
    """One page of a result's per-sample rows."""
    job = jobs.visible_job(session, principal, job_id)
    chosen = eval_results.result_of(session, job, result)
    samples = eval_results.load_samples(settings.storage_root, chosen)
    page, total = eval_results.sample_page(samples, sort, metric, q, offset, limit)
    return EvalSamplePage.model_validate({"items": [s.public() for s in page], "total": total})


@router.get("/api/evaluations/diff", response_model=EvalDiffPage, responses={**NOT_FOUND, **INVALID})
def evaluation_diff(
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    a: Annotated[str, Query(description="The eval job compared against.")],
    b: Annotated[str, Query(description="The eval job compared.")],
    result: Annotated[str | None, Query(description="The result both jobs have; default: their only one.")] = None,
    metric: Annotated[str | None, Query(description="Default: the first catalog metric the rows score.")] = None,
    changed_only: Annotated[bool, Query(description="Only samples whose answers differ.")] = False,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EvalDiffPage:
    """B's answers against A's on the same samples (matched by index): better, worse or the same by the metric."""
    job_a, job_b = jobs.visible_job(session, principal, a), jobs.visible_job(session, principal, b)
    found = eval_results.results_of(session, [job_a.id, job_b.id])
    name = eval_results.common_result(found[job_a.id], found[job_b.id], result)
    samples_a = eval_results.load_samples(settings.storage_root, eval_results.result_of(session, job_a, name))
    samples_b = eval_results.load_samples(settings.storage_root, eval_results.result_of(session, job_b, name))
    diff = eval_results.diff_samples(samples_a, samples_b, metric, changed_only, offset, limit)
    return EvalDiffPage.model_validate(
        {"items": diff.items, "total": diff.total, **diff.counts, "metric": diff.metric, "result": name}
    )


UNAUTHORIZED: Responses = {401: {"model": ErrorBody, "description": "Not signed in."}}


@router.get("/api/evaluations/catalog", response_model=EvaluationCatalog, responses=UNAUTHORIZED)
def evaluation_catalog(settings: SettingsDep, principal: PrincipalDep) -> EvaluationCatalog:
    """What evaluations measure: the metrics, the benchmark sets, the kinds and judge modes."""
    return EvaluationCatalog(
        metrics=[MetricInfoPublic.model_validate(metric) for metric in METRICS],
        predict_metrics=list(PREDICT_METRICS),
        benchmarks=[BenchmarkInfoPublic.model_validate(b) for b in list_benchmarks(settings)],
        kinds=list(EVAL_KINDS),
        judge_modes=list(JUDGE_MODES),
    )
