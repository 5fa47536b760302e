"""A prediction run (LLaMA-Factory's ``do_predict`` with ``predict_with_generate``): an answer for every
row of the eval dataset(s), scored against the row's own answer.

Writes into ``output_dir`` what LF writes: ``generated_predictions.jsonl`` (one JSON line per row with LF's
``prompt``, ``predict``, ``label``, plus Tunery's ``index`` and per-sample ``scores``) and
``predict_results.json`` (``predict_bleu-4``, ``predict_rouge-1/2/l`` as LF computes them, plus
``predict_exact_match``, ``predict_length_mean``/``_max``, ``predict_runtime``, ``predict_samples_per_second``,
``predict_samples``), merged into ``all_results.json`` as LF's ``save_metrics`` does. With
``eval_on_each_dataset`` and several eval datasets each one is its own evaluation:
``generated_predictions_<name>.jsonl`` and ``predict_<name>_...`` keys.

Texts are decoded as LF decodes them: the prompt with special tokens, the prediction and the label with
``skip_special_tokens`` (the template's stop words count as special, as LF registers them); the metrics
always score the texts without special tokens (LF's ``ComputeSimilarity`` decodes so). Differences from
LF: the answer never holds the stop token or padding (LF's text does when ``skip_special_tokens`` is false).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunery.evaluation import scoring
from tunery.evaluation.metrics import Sample, Scores, aggregate
from tunery.evaluation.outcome import EvalOutcome, Progress
from tunery.evaluation.predict_data import (
    PredictRow,
    PredictSet,
    encode_options,
    encode_predict_rows,
    load_predict_examples,
)
from tunery.evaluation.scoring import Scorer, worker_count

if TYPE_CHECKING:
    from tunery.engine.templates.base import ChatTemplate
    from tunery.serving.types import GenerationRequest
    from tunery.spec import JobSpec

logger = logging.getLogger(__name__)
Log = Callable[[str, str], None]  # (level, message)


@dataclass
class Answer:
    row: PredictRow
    token_ids: list[int]


def run_predict(
    spec: JobSpec, output_dir: Path, progress: Progress, *, cache_dir: Path | None = None, log: Log | None = None
) -> list[EvalOutcome]:
    """Predict every eval row with the spec's model (and adapter); one outcome per evaluated set."""
    from tunery.engine.train.data import load_template
    from tunery.engine.train.errors import invalid_spec
    from tunery.engine.train.model import load_tokenizer

    say = log or (lambda level, message: logger.info(message))
    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    if template is None:  # pragma: no cover - load_template returns None only for stage pt
        raise invalid_spec("template", "predictions need a chat template")
    examples, warnings = load_predict_examples(spec, cache_dir)
    for warning in warnings:
        say("warning", warning)
    options = encode_options(spec)
    sets = [
        PredictSet(name, encode_predict_rows(part, tokenizer, template, options)) for name, part in examples.items()
    ]
    total = sum(len(s.rows) for s in sets)
    if total == 0:
        from tunery.engine.data.api import DataError

        raise DataError("no rows to predict: the eval data has no valid row")
    decode = _Decoder(tokenizer, template)
    rows = [row for predict_set in sets for row in predict_set.rows]
    workers = worker_count() if total >= scoring.BACKGROUND_MIN_ROWS else 0
    labels = [decode(row.label_ids, True) for row in rows]
    scorer = Scorer(spec.evaluation.eval_metrics, workers, labels)
    answers: list[list[int]] = [[] for _ in rows]
    samples: list[Sample] = [Sample("", "", 0) for _ in rows]

    def on_answer(index: int, ids: list[int]) -> None:
        answers[index] = ids
        samples[index] = Sample(decode(ids, True), labels[index], len(ids))
        scorer.add(index, samples[index])

    try:
        progress(0, total)
        runtime_start = _generate(spec, rows, tokenizer, template, progress, on_answer, say)
        per_sample = scorer.results(len(rows))
    finally:
        scorer.close()
    scored = []
    offset = 0
    for predict_set in sets:
        part = range(offset, offset + len(predict_set.rows))
        offset += len(predict_set.rows)
        scores = [per_sample[i] for i in part]
        figures = aggregate(scores, spec.evaluation.eval_metrics)
        pairs = [Answer(rows[i], answers[i]) for i in part]
        scored.append(_Scored(predict_set.name, pairs, [samples[i] for i in part], scores, figures))
    runtime = time.monotonic() - runtime_start  # as LF's predict_runtime: generation and metrics
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "predict_results.json").unlink(missing_ok=True)
    outcomes = [_write(spec, scored_set, decode, output_dir, runtime, total, len(sets) > 1) for scored_set in scored]
    progress(total, total)
    return outcomes


def _generate(
    spec: JobSpec,
    rows: list[PredictRow],
    tokenizer: Any,
    template: ChatTemplate,
    progress: Progress,
    on_answer: Callable[[int, list[int]], None],
    say: Log,
) -> float:
    """Generate every row's answer (``on_answer(index, ids)`` as each ends); returns when generation began."""
    from tunery.evaluation.predict_engine import engine_name, stop_token_ids

    adapters = spec.model.adapter_name_or_path or []
    adapter = adapters[-1] if adapters else None
    name = engine_name(spec)
    stops = stop_token_ids(tokenizer, template)
    model = spec.model.model_name_or_path + (f" + adapter {adapter}" if adapter else "")
    say("info", f"predicting {len(rows)} rows with the {name} engine ({model})")
    report = lambda done: progress(done, len(rows))  # noqa: E731
    if name == "vllm":
        return _generate_vllm(spec, rows, adapter, stops, report, on_answer)
    from tunery.evaluation.predict_hf import generate_hf, load_model

    loaded, context = load_model(spec, adapter)
    requests = _requests(spec, rows, stops, context, None, seed_per_row=True)
    report(0)
    start = time.monotonic()
    generate_hf(loaded, requests, spec.training.per_device_eval_batch_size, context, report, on_answer)
    return start


def _requests(
    spec: JobSpec, rows: list[PredictRow], stops: set[int], context: int, adapter: str | None, seed_per_row: bool
) -> list[GenerationRequest]:
    from tunery.engine.train.errors import invalid_spec
    from tunery.evaluation.predict_engine import sampling_for
    from tunery.serving.types import GenerationRequest

    longest = max(len(row.prompt_ids) for row in rows)
    if longest >= context:
        raise invalid_spec(
            "cutoff_len",
            f"a prompt of {longest} tokens leaves no room for an answer in the model's context of {context} tokens;"
            " lower cutoff_len",
        )
    return [
        GenerationRequest(row.prompt_ids, sampling_for(spec, stops, row, context, seed_per_row), adapter=adapter)
        for row in rows
    ]


def _generate_vllm(
    spec: JobSpec,
    rows: list[PredictRow],
    adapter: str | None,
    stops: set[int],
    report: Callable[[int], None],
    on_answer: Callable[[int, list[int]], None],
) -> float:
    from tunery.engine.train.errors import invalid_spec
    from tunery.evaluation.predict_engine import ADAPTER_NAME, engine_options, generate_rows_vllm
    from tunery.serving.engines.registry import create_engine, vllm_installed
    from tunery.serving.types import EngineError

    options = engine_options(spec, spec.model.model_name_or_path, adapter)
    if not vllm_installed(options.vllm_python):
        raise invalid_spec(
            "infer_backend", f"vllm is not installed ({options.vllm_python}); run `make vllm` or use huggingface"
        )
    engine = create_engine("vllm", options)

    async def run() -> float:
        await engine.start()
        try:
            if adapter is not None:
                try:
                    await engine.load_adapter(ADAPTER_NAME, adapter)
                except EngineError as exc:
                    raise invalid_spec("adapter_name_or_path", str(exc)) from exc
            requests = _requests(spec, rows, stops, engine.context_length, adapter and ADAPTER_NAME, seed_per_row=False)
            report(0)
            start = time.monotonic()
            await generate_rows_vllm(engine, requests, report, on_answer)
            return start
        finally:
            await engine.stop()

    return asyncio.run(run())


class _Decoder:
    """LF's decoding: special tokens (and the template's stop words, which LF makes special) skipped or kept."""

    def __init__(self, tokenizer: Any, template: ChatTemplate) -> None:
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        self.stop_words = {vocab[word] for word in template.stop_words if word and word in vocab}

    def __call__(self, ids: list[int], skip_special_tokens: bool) -> str:
        if skip_special_tokens:
            ids = [token for token in ids if token not in self.stop_words]
        text: str = self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        return text


def file_suffix(name: str) -> str:
    return "_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@dataclass
class _Scored:
    name: str
    answers: list[Answer]
    samples: list[Sample]
    per_sample: list[Scores]
    figures: Scores


def _write(
    spec: JobSpec, scored: _Scored, decode: _Decoder, output_dir: Path, runtime: float, rows: int, several: bool
) -> EvalOutcome:
    """One set's generated_predictions file and predict_results keys (runtime and rate: the whole run's)."""
    skip = spec.generation.skip_special_tokens
    samples_file = f"generated_predictions{file_suffix(scored.name) if several else ''}.jsonl"
    with open(output_dir / samples_file, "w", encoding="utf-8") as handle:
        for answer, sample, scores in zip(scored.answers, scored.samples, scored.per_sample, strict=True):
            handle.write(json.dumps(_row(answer, sample, scores, decode, skip), ensure_ascii=False) + "\n")
    metrics = dict(scored.figures)
    metrics["samples_per_second"] = round(rows / runtime, 3) if runtime > 0 else 0.0
    prefix = f"predict_{scored.name}_" if several else "predict_"
    results: dict[str, Any] = {prefix + key: value for key, value in scored.figures.items()}
    results.update(
        {
            f"{prefix}runtime": round(runtime, 4),
            f"{prefix}samples_per_second": metrics["samples_per_second"],
            f"{prefix}samples": len(scored.answers),
        }
    )
    _merge_json(output_dir / "predict_results.json", results)
    _merge_json(output_dir / "all_results.json", results)
    return EvalOutcome(scored.name, "predict", metrics, samples_file=samples_file, samples=len(scored.answers))


def _row(answer: Answer, sample: Sample, scores: Scores, decode: _Decoder, skip: bool) -> dict[str, Any]:
    return {
        "index": answer.row.index,
        "prompt": decode(answer.row.prompt_ids, False),
        "predict": sample.predict if skip else decode(answer.token_ids, False),
        "label": sample.label if skip else decode(answer.row.label_ids, False),
        "scores": scores,
    }


def _merge_json(path: Path, values: dict[str, Any]) -> None:
    """Add ``values`` to the JSON object in ``path`` (LF's ``save_metrics`` keeps all_results.json so)."""
    current: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            current = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            current = {}
    current.update(values)
    path.write_text(json.dumps(current, indent=4, sort_keys=True) + "\n", encoding="utf-8")
