"""Request and response bodies of the evaluations API (eval jobs, their results, samples and diffs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunery.server.api.schemas.jobs import JobSummary

EvalKind = Literal["predict", "benchmark", "judge"]
JudgeMode = Literal["single", "pairwise"]
#: the kinds of evaluation and the judge modes, in the order the catalog lists them
EVAL_KINDS: tuple[EvalKind, ...] = ("predict", "benchmark", "judge")
JUDGE_MODES: tuple[JudgeMode, ...] = ("single", "pairwise")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeSettings(_Request):
    """The judge: a model on an OpenAI-compatible endpoint (Tunery's own ``/v1`` included)."""

    model: str = Field(min_length=1, max_length=300, description="The judge's model id on base_url.")
    base_url: str = Field(
        pattern=r"^https?://\S+$", max_length=2000, description="The endpoint's base URL, e.g. http://host/v1."
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=200,
        description="Name of the environment variable of the workers that holds the judge's API key "
        "(the key itself is never sent or stored).",
    )
    rubric: str | None = Field(
        default=None,
        max_length=20000,
        description="What the judge scores; {prompt}, {label}, {prediction} are filled in.",
    )
    mode: JudgeMode = Field(default="single", description="single: a 1-10 score per answer; pairwise: A vs B.")


class GenerationSettings(_Request):
    """Decoding of a prediction run (unset: the spec's defaults)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None
    do_sample: bool | None = None
    num_beams: int | None = None
    repetition_penalty: float | None = None


class EvaluationCreate(_Request):
    """An eval job. ``predict``: generate over ``datasets`` and score (judge too when ``judge`` is set);
    ``benchmark``: a multiple-choice ``task``; ``judge``: judge the predictions of ``judge_jobs`` (or, without
    them, predict over ``datasets`` and judge the answers)."""

    name: str | None = Field(default=None, max_length=200)
    experiment_id: str | None = None
    model: str | None = Field(
        default=None,
        max_length=500,
        description="A served model id: a base model's name, ft:<base>:<project>:<job> or ...:ckpt-<step>. "
        "Required, except when judging judge_jobs (default: the first judged job's model).",
    )
    kind: EvalKind
    datasets: list[str] | None = Field(default=None, description="Project dataset names (name or name@version).")
    max_samples: int | None = Field(default=None, description="Rows per dataset at most.")
    metrics: list[str] | None = Field(default=None, description="Prediction metrics (see the catalog).")
    task: str | None = Field(default=None, description="Benchmark and split, '<benchmark>_<split>' (mmlu_test).")
    lang: Literal["en", "zh"] | None = None
    n_shot: int | None = Field(default=None, description="Solved examples before each question (default 5).")
    judge: JudgeSettings | None = None
    judge_jobs: list[str] | None = Field(
        default=None, description="Eval jobs whose predictions are judged (pairwise: two, A then B)."
    )
    generation: GenerationSettings | None = None
    infer_backend: str | None = Field(default=None, description="huggingface or vllm (when installed).")
    gpus: int | None = Field(default=None, ge=0, le=64, description="GPUs to hold; default 1 (0 without GPUs).")


class EvalResultPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="What was evaluated: the dataset, the benchmark task, 'judge'.")
    kind: EvalKind
    metrics: dict[str, float] = Field(description="Figures by metric name (see the catalog's metrics).")
    breakdown: dict[str, dict[str, float]] = Field(description="Benchmarks: accuracy per subject and category.")
    samples: int = Field(description="Per-sample rows (GET /api/jobs/{id}/eval-samples).")
    created_at: datetime


class EvaluationRun(BaseModel):
    job: JobSummary
    model: str | None = Field(description="The served model id evaluated.")
    kind: EvalKind
    results: list[EvalResultPublic]
    request: dict[str, Any] = Field(
        default_factory=dict,
        description="What the job was created with (EvaluationCreate's fields: datasets, task, judge, judge_jobs, "
        "generation, ...); for eval jobs from POST /api/jobs only model and kind.",
    )


class EvaluationRunPage(BaseModel):
    items: list[EvaluationRun]
    next_cursor: str | None = Field(description="Pass as ``cursor`` for the next page; null on the last page.")


class EvalSamplePublic(BaseModel):
    index: int
    prompt: str
    label: str
    predict: str
    predict_b: str | None = Field(default=None, description="Pairwise judging: B's answer (predict is A's).")
    winner: Literal["a", "b", "tie"] | None = Field(default=None, description="Pairwise judging.")
    subject: str | None = Field(default=None, description="Benchmarks: the question's subject.")
    scores: dict[str, float]


class EvalSamplePage(BaseModel):
    items: list[EvalSamplePublic]
    total: int = Field(description="Rows matching q (before offset and limit).")


class EvalDiffItem(BaseModel):
    index: int
    prompt: str
    label: str
    predict_a: str
    predict_b: str
    score_a: float | None
    score_b: float | None
    change: Literal["better", "worse", "same"] = Field(description="b compared to a, by the metric's direction.")


class EvalDiffPage(BaseModel):
    items: list[EvalDiffItem]
    total: int = Field(description="Rows listed (changed ones only with changed_only) before offset and limit.")
    better: int
    worse: int
    same: int
    metric: str = Field(description="The metric compared.")
    result: str = Field(description="The result compared (its name in both jobs).")


class MetricInfoPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    title: str
    higher_is_better: bool | None = Field(description="Which way is better; null: neither (a length).")
    unit: str
    summary: str


class BenchmarkInfoPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    task: str = Field(description="The benchmark's folder; a job's task is '<task>_<split>'.")
    title: str
    subjects: list[str]
    categories: list[str] = Field(default_factory=list, description="The subjects' categories (STEM, ...).")
    languages: list[str]
    splits: list[str]
    bundled: bool = Field(description="Shipped with Tunery (a small sample set), not dropped in by an admin.")


class EvaluationCatalog(BaseModel):
    metrics: list[MetricInfoPublic]
    predict_metrics: list[str] = Field(description="Names a prediction run's ``metrics`` may list.")
    benchmarks: list[BenchmarkInfoPublic]
    kinds: list[EvalKind]
    judge_modes: list[JudgeMode]
