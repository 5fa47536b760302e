"""LLM-as-judge over prediction files (``generated_predictions.jsonl``: prompt, predict, label per row).

- ``judge_single``: the rubric (``judge_rubric``, default ``judge_parse.DEFAULT_RUBRIC``) filled with each
  row's prompt, label and prediction; a 1-10 score per row read from the reply, probability-weighted over the
  score tokens when the endpoint returns ``top_logprobs`` (``judge_weighted`` in the row). Rows without a
  usable reply count as ``judge_failures`` and get no score. Samples: ``judge_samples.jsonl``.
- ``judge_pairwise``: the same prompts in two files (A, B; matched by row), each pair judged twice with the
  answers swapped; a side wins only when both verdicts agree, otherwise it is a tie (cancels position bias).
  Metrics ``win_rate_a``, ``win_rate_b``, ``tie_rate`` in percent of the pairs judged. Samples:
  ``judge_pairwise.jsonl``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from tunery.engine.train.errors import TrainingError, invalid_spec
from tunery.evaluation.judge_client import JudgeClient, JudgeSettings
from tunery.evaluation.judge_parse import (
    DEFAULT_PAIRWISE_RUBRIC,
    DEFAULT_RUBRIC,
    check_rubric,
    fill,
    parse_score,
    parse_verdict,
)
from tunery.evaluation.outcome import EvalOutcome, Progress
from tunery.spec import JobSpec

SINGLE_FILE = "judge_samples.jsonl"
PAIRWISE_FILE = "judge_pairwise.jsonl"
NO_LABEL = "(no reference answer)"
#: room for a reasoning judge's thinking before the short reply the rubrics ask for
MAX_TOKENS = 1024

Winner = Literal["a", "b", "tie"]


def judge_single(spec: JobSpec, predictions: Path, output_dir: Path, progress: Progress) -> EvalOutcome:
    """Score every prediction of ``predictions`` 1-10 with the judge; write ``judge_samples.jsonl``."""
    rows = read_predictions(predictions)
    rubric = _rubric(spec, "single")
    settings = JudgeSettings.from_spec(spec)

    async def one(client: JudgeClient, row: dict[str, Any]) -> dict[str, Any]:
        reply = await client.ask(fill(rubric, _values(row)))
        scores = dict(row.get("scores") or {})
        scores.pop("judge_score", None)
        if reply.error is not None:
            return {**row, "scores": scores, "judge_reason": f"judge failed: {reply.error}", "judge_failed": True}
        reading = parse_score(reply.content, reply.logprobs)
        if reading.score is None:
            reason = f"judge failed: {reading.error}" + (f" ({reading.reason})" if reading.reason else "")
            return {**row, "scores": scores, "judge_reason": reason, "judge_failed": True}
        scores["judge_score"] = reading.score
        return {**row, "scores": scores, "judge_reason": reading.reason, "judge_weighted": reading.weighted}

    judged = _run(settings, rows, one, progress, calls_per_row=1, max_tokens=MAX_TOKENS)
    _write_rows(output_dir / SINGLE_FILE, judged)
    scored = [row["scores"]["judge_score"] for row in judged if "judge_score" in row["scores"]]
    metrics = {"judge_failures": float(len(judged) - len(scored))}
    if scored:
        metrics["judge_score"] = round(sum(scored) / len(scored), 4)
    return EvalOutcome("judge", "judge", metrics, samples_file=SINGLE_FILE, samples=len(judged))


def judge_pairwise(spec: JobSpec, a: Path, b: Path, output_dir: Path, progress: Progress) -> EvalOutcome:
    """Compare the answers of ``a`` and ``b`` to the same prompts; write ``judge_pairwise.jsonl``."""
    rows_a, rows_b = read_predictions(a), read_predictions(b)
    pairs = match_rows(a, rows_a, b, rows_b)
    rubric = _rubric(spec, "pairwise")
    settings = JudgeSettings.from_spec(spec)

    async def one(client: JudgeClient, pair: dict[str, Any]) -> dict[str, Any]:
        row_a, row_b = pair["a"], pair["b"]
        out = {
            "index": row_a["index"], "prompt": row_a["prompt"], "label": row_a["label"],
            "predict": row_a["predict"], "predict_b": row_b["predict"],
        }  # fmt: skip
        if row_a["predict"].strip() == row_b["predict"].strip():
            return {**out, "winner": "tie", "scores": _win_scores("tie"), "judge_reason": "identical answers"}
        values = _values(row_a)
        first, second = await asyncio.gather(
            client.ask(fill(rubric, {**values, "prediction_a": row_a["predict"], "prediction_b": row_b["predict"]})),
            client.ask(fill(rubric, {**values, "prediction_a": row_b["predict"], "prediction_b": row_a["predict"]})),
        )
        verdicts: list[Winner] = []
        reasons = []
        for reply, swapped in ((first, False), (second, True)):
            verdict, reason = parse_verdict(reply.content) if reply.error is None else (None, reply.error)
            if verdict is None:
                why = reply.error or "no verdict (A, B or tie) in the judge's reply"
                return {**out, "winner": "tie", "scores": {}, "judge_failed": True,
                        "judge_reason": f"judge failed{' (answers swapped)' if swapped else ''}: {why}"}  # fmt: skip
            verdicts.append(_unswap(verdict, swapped))
            reasons.append(reason)
        winner: Winner = verdicts[0] if verdicts[0] == verdicts[1] else "tie"
        reason = f"A first: {reasons[0]} | B first: {reasons[1]}"
        return {**out, "winner": winner, "verdicts": verdicts, "scores": _win_scores(winner), "judge_reason": reason}

    judged = _run(settings, pairs, one, progress, calls_per_row=2, max_tokens=MAX_TOKENS)
    _write_rows(output_dir / PAIRWISE_FILE, judged)
    counted = [row for row in judged if not row.get("judge_failed")]
    metrics = {"judge_failures": float(len(judged) - len(counted))}
    if counted:
        for name in ("win_rate_a", "win_rate_b", "tie_rate"):
            metrics[name] = round(sum(row["scores"][name] for row in counted) / len(counted), 4)
    return EvalOutcome("judge_pairwise", "judge", metrics, samples_file=PAIRWISE_FILE, samples=len(judged))


# ---- files -------------------------------------------------------------------------------------


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Rows of a predictions file with ``index`` (default: the row number), ``prompt``, ``label``, ``predict``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise invalid_spec("judge_predictions", f"cannot read {path}: {exc.strerror or exc}") from exc
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingError("invalid_data", f"{path}, row {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("predict"), str):
            raise TrainingError("invalid_data", f"{path}, row {number}: expected an object with a 'predict' text")
        row.setdefault("index", len(rows))
        row["prompt"] = str(row.get("prompt") or "")
        row["label"] = str(row.get("label") or "")
        rows.append(row)
    if not rows:
        raise TrainingError("invalid_data", f"{path}: no predictions to judge")
    return rows


def match_rows(
    a: Path, rows_a: Sequence[dict[str, Any]], b: Path, rows_b: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Pairs of rows with the same index and prompt; a clear error naming the file and row otherwise."""
    if len(rows_a) != len(rows_b):
        raise TrainingError(
            "invalid_data", f"{b} has {len(rows_b)} predictions, {a} has {len(rows_a)}: compare runs on the same data"
        )
    for number, (row_a, row_b) in enumerate(zip(rows_a, rows_b, strict=True), start=1):
        if row_a["index"] != row_b["index"] or row_a["prompt"] != row_b["prompt"]:
            raise TrainingError(
                "invalid_data",
                f"{b}, row {number}: its prompt differs from {a}, row {number} (index {row_b['index']} vs "
                f"{row_a['index']}): pairwise judging needs the same prompts in the same order",
            )
    return [{"a": row_a, "b": row_b} for row_a, row_b in zip(rows_a, rows_b, strict=True)]


def _write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---- helpers -----------------------------------------------------------------------------------


def _rubric(spec: JobSpec, mode: Literal["single", "pairwise"]) -> str:
    rubric = spec.evaluation.judge_rubric or (DEFAULT_RUBRIC if mode == "single" else DEFAULT_PAIRWISE_RUBRIC)
    problem = check_rubric(rubric, mode)
    if problem:
        raise invalid_spec("judge_rubric", problem)
    return rubric


def _values(row: dict[str, Any]) -> dict[str, str]:
    return {"prompt": row["prompt"], "label": row["label"] or NO_LABEL, "prediction": row["predict"]}


def _unswap(verdict: str, swapped: bool) -> Winner:
    if verdict == "tie":
        return "tie"
    first: Winner = "b" if swapped else "a"
    return first if verdict == "A" else ("a" if swapped else "b")


def _win_scores(winner: Winner) -> dict[str, float]:
    return {
        "win_rate_a": 100.0 if winner == "a" else 0.0,
        "win_rate_b": 100.0 if winner == "b" else 0.0,
        "tie_rate": 100.0 if winner == "tie" else 0.0,
    }


def _run(
    settings: JudgeSettings,
    rows: Sequence[dict[str, Any]],
    one: Callable[[JudgeClient, dict[str, Any]], Awaitable[dict[str, Any]]],
    progress: Progress,
    *,
    calls_per_row: int,
    max_tokens: int,
) -> list[dict[str, Any]]:
    """``one`` over every row concurrently (the client bounds the requests in flight), in row order."""

    async def main() -> list[dict[str, Any]]:
        client = JudgeClient(settings, max_tokens=max_tokens)
        total = len(rows) * calls_per_row
        done = 0
        progress(0, total)

        async def tracked(row: dict[str, Any]) -> dict[str, Any]:
            nonlocal done
            result = await one(client, row)
            done += calls_per_row
            progress(done, total)
            return result

        try:
            return list(await asyncio.gather(*(tracked(row) for row in rows)))
        finally:
            await client.close()

    return asyncio.run(main())
