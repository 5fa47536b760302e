"""Evaluation section of the job spec: LLaMA-Factory's benchmark keys (``llamafactory-cli eval``), the metrics
a prediction run reports and the LLM judge (Tunery's own keys)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tunery.spec.base import Section, split_csv

#: Metrics a prediction run can report (the engine's metric registry must have exactly these names).
PREDICT_METRICS: tuple[str, ...] = ("bleu", "rouge", "exact_match", "length")


class EvaluationSection(Section):
    """What an eval job measures. ``seed`` is the training section's (LF shares one key)."""

    # LLaMA-Factory's EvaluationArguments (multiple-choice benchmarks)
    task: str | None = Field(
        default=None,
        description="Benchmark and split, '<folder>_<split>' (mmlu_test, cmmlu_test, ceval_validation): a folder "
        "of task_dir in LLaMA-Factory's evaluation layout.",
    )
    task_dir: str = Field(default="evaluation", description="Folder holding the benchmark folders.")
    batch_size: int = Field(default=4, gt=0, description="Benchmark questions scored per forward pass.")
    lang: Literal["en", "zh"] = Field(default="en", description="Language of the benchmark prompt.")
    n_shot: int = Field(default=5, ge=0, description="Solved examples (from the dev split) before each question.")
    save_dir: str | None = Field(default=None, description="Where benchmark results go (default: output_dir).")
    download_mode: Literal["reuse_dataset_if_exists", "reuse_cache_if_exists", "force_redownload"] = (
        "reuse_dataset_if_exists"
    )
    # Prediction metrics (do_predict / predict_with_generate)
    eval_metrics: list[str] = Field(
        default_factory=lambda: list(PREDICT_METRICS),
        description="Metrics of a prediction run: " + ", ".join(PREDICT_METRICS) + " (comma-separated or a list).",
    )
    # LLM-as-judge (any OpenAI-compatible endpoint, Tunery's own /v1 included)
    judge_model: str | None = Field(default=None, description="Judge model id on judge_base_url; set to judge.")
    judge_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL (…/v1) of the judge.")
    judge_api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the judge's API key (the key never enters the spec).",
    )
    judge_rubric: str | None = Field(
        default=None,
        description="What the judge scores (default: a helpfulness and "
        "correctness rubric); {prompt}, {label}, {prediction} are filled in.",
    )
    judge_mode: Literal["single", "pairwise"] = Field(
        default="single", description="single: a 1-10 score per answer; pairwise: A vs B on the same prompts."
    )
    judge_predictions: list[str] | None = Field(
        default=None,
        description="generated_predictions.jsonl files to judge instead of generating (pairwise: two, A then B).",
    )
    judge_max_concurrency: int = Field(default=8, gt=0, description="Judge requests in flight at once.")

    _split = field_validator("eval_metrics", "judge_predictions", mode="before")(split_csv)
