"""Cross-field rules of prediction runs (``do_predict``, ``tunery eval``) and of the evaluation section.
Registered into ``tunery.spec.rules.RULES`` on import (rules.py imports this module).

LLaMA-Factory 0.9.5's semantics, and what Tunery does with them:

- ``do_predict`` generates an answer for every row of ``eval_dataset`` (or of the ``val_size`` split) after
  training, or without training when ``do_train`` is false. LF refuses ``do_predict`` without
  ``predict_with_generate`` for SFT ("Please enable `predict_with_generate` to save model predictions") and
  ``predict_with_generate`` on any other stage; Tunery refuses the same. ``predict_with_generate`` alone makes
  LF generate during ``do_eval`` evaluations too; Tunery's evaluations during training report loss, so it
  is refused without ``do_predict``.
- Generation: ``do_sample``, ``temperature``, ``top_p``, ``top_k``, ``repetition_penalty``, ``max_new_tokens``
  and ``skip_special_tokens`` are honoured. LF always passes ``max_new_tokens`` (it must be above 0), which
  makes transformers ignore ``max_length`` and ``generation_max_length``; setting them is refused rather than
  silently ignored. Beam search (``num_beams`` / ``eval_num_beams`` above 1, and ``length_penalty``, which only
  beam search reads) is refused: the serving engines decode greedily or sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.spec.errors import SpecProblem
from tunery.spec.evaluation import PREDICT_METRICS
from tunery.spec.rules import rule

if TYPE_CHECKING:
    from tunery.spec.job import JobSpec

#: The engines a prediction run can use (``infer_backend`` values; ``hf`` is an alias of huggingface).
PREDICT_BACKENDS: tuple[str, ...] = ("huggingface", "hf", "vllm")
#: Evaluation keys that only a benchmark (``task``) reads, and those only the judge (``judge_model``) reads.
BENCHMARK_KEYS: tuple[str, ...] = ("task_dir", "batch_size", "lang", "n_shot", "save_dir", "download_mode")
JUDGE_KEYS: tuple[str, ...] = (
    "judge_base_url",
    "judge_api_key_env",
    "judge_rubric",
    "judge_mode",
    "judge_predictions",
    "judge_max_concurrency",
)


def _set(section: object, key: str) -> bool:
    """Whether ``key`` differs from its default."""
    fields = type(section).model_fields  # type: ignore[attr-defined]
    return bool(getattr(section, key) != fields[key].get_default(call_default_factory=True))


@rule
def _predict(spec: JobSpec) -> list[SpecProblem]:
    training, data, stage = spec.training, spec.data, spec.method.stage
    problems = []
    if training.predict_with_generate and not training.do_predict:
        problems.append(
            SpecProblem(
                "predict_with_generate",
                "only applies with do_predict (evaluations during training report loss, they do not generate)",
            )
        )
    if data.eval_num_beams not in (None, 1):
        problems.append(
            SpecProblem("eval_num_beams", "beam search is not supported for predictions (greedy or sampling); use 1")
        )
    if training.generation_max_length is not None:
        problems.append(
            SpecProblem(
                "generation_max_length",
                "is not used: max_new_tokens limits each answer and cutoff_len the prompt (as in LLaMA-Factory, "
                "whose max_new_tokens overrides it); set max_new_tokens instead",
            )
        )
    if not training.do_predict:
        return problems
    if stage != "sft":
        problems.append(
            SpecProblem("do_predict", f"only applies to stage sft (answers are generated); this job is stage {stage}")
        )
    if not training.predict_with_generate:
        problems.append(
            SpecProblem(
                "predict_with_generate",
                "must be true with do_predict: predictions are generated (as LLaMA-Factory requires)",
            )
        )
    if not data.eval_dataset and data.val_size <= 1e-6:
        problems.append(SpecProblem("do_predict", "needs eval_dataset (or val_size) to predict on"))
    elif not data.eval_dataset and not data.dataset:
        problems.append(SpecProblem("val_size", "needs dataset to split the rows to predict on from"))
    if data.streaming:
        problems.append(SpecProblem("streaming", "is not supported with do_predict: rows are read up front"))
    if spec.model.gguf_file:
        problems.append(
            SpecProblem(
                "gguf_file",
                "predictions need a model folder in safetensors (the inference engines do not read GGUF); convert it",
            )
        )
    adapters = spec.model.adapter_name_or_path or []
    if len(adapters) > 1 and (not training.do_train or spec.method.finetuning_type == "lora"):
        problems.append(
            SpecProblem(
                "adapter_name_or_path",
                f"predictions load one LoRA adapter on the base model ({len(adapters)} given); merge the others "
                "into the base model first",
            )
        )
    if spec.model.infer_backend not in PREDICT_BACKENDS:
        problems.append(
            SpecProblem(
                "infer_backend",
                f"{spec.model.infer_backend} is not supported for predictions; use huggingface or vllm",
            )
        )
    return problems + _generation_problems(spec)


def _generation_problems(spec: JobSpec) -> list[SpecProblem]:
    generation = spec.generation
    problems = []
    if generation.num_beams != 1:
        problems.append(
            SpecProblem("num_beams", "beam search is not supported for predictions (greedy or sampling); use 1")
        )
    if generation.length_penalty != 1.0:
        problems.append(SpecProblem("length_penalty", "only applies to beam search, which predictions do not use"))
    if _set(generation, "max_length"):
        problems.append(
            SpecProblem(
                "max_length",
                "is not used: max_new_tokens limits each answer (LLaMA-Factory passes it, which overrides "
                "max_length); set max_new_tokens instead",
            )
        )
    if generation.do_sample and generation.temperature == 0:
        problems.append(
            SpecProblem("temperature", "must be above 0 when do_sample is true (set do_sample: false for greedy)")
        )
    return problems


@rule
def _evaluation_section(spec: JobSpec) -> list[SpecProblem]:
    evaluation, training = spec.evaluation, spec.training
    problems = []
    unknown = [name for name in evaluation.eval_metrics if name not in PREDICT_METRICS]
    if unknown:
        problems.append(
            SpecProblem(
                "eval_metrics", f"unknown metric {', '.join(unknown)}; choose from: {', '.join(PREDICT_METRICS)}"
            )
        )
    if evaluation.task and evaluation.judge_predictions:
        problems.append(
            SpecProblem("task", "a benchmark and judging existing predictions are separate eval jobs; set one")
        )
    if training.do_train:
        for key in ("task", "judge_predictions"):
            if getattr(evaluation, key):
                problems.append(
                    SpecProblem(
                        key,
                        "applies to eval jobs (tunery eval, do_train: false); a training job predicts with do_predict",
                    )
                )
    if not evaluation.task:
        problems.extend(
            SpecProblem(key, "only applies to a benchmark (set task)")
            for key in BENCHMARK_KEYS
            if _set(evaluation, key)
        )
    if not evaluation.judge_model:
        problems.extend(
            SpecProblem(key, "only applies to the LLM judge (set judge_model)")
            for key in JUDGE_KEYS
            if _set(evaluation, key)
        )
    else:
        if not evaluation.judge_base_url:
            problems.append(
                SpecProblem("judge_base_url", "is required with judge_model (an OpenAI-compatible …/v1 URL)")
            )
        if evaluation.task:
            problems.append(SpecProblem("judge_model", "judges generated answers; a benchmark (task) has none"))
        wanted = 2 if evaluation.judge_mode == "pairwise" else 1
        given = evaluation.judge_predictions
        if given is not None and len(given) != wanted:
            problems.append(
                SpecProblem(
                    "judge_predictions",
                    f"judge_mode {evaluation.judge_mode} takes {wanted} predictions file(s), got {len(given)}",
                )
            )
        if evaluation.judge_mode == "pairwise" and given is None:
            problems.append(
                SpecProblem("judge_predictions", "judge_mode pairwise compares two predictions files (A then B)")
            )
    predicts = training.do_predict or not (evaluation.task or evaluation.judge_predictions or training.do_train)
    if not predicts and _set(evaluation, "eval_metrics"):
        problems.append(SpecProblem("eval_metrics", "only applies to prediction runs (do_predict)"))
    return problems
