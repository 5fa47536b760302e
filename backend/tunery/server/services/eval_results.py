"""Reading evaluations: eval jobs with their results, per-sample rows (sorted, searched, paged) and the
sample-by-sample diff of two runs. Sample files are JSON lines under the storage root (never outside it)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.db.models import EvalResult, Job, JobKind
from tunery.server.errors import InvalidError, NotFoundError
from tunery.server.services.eval_catalog import direction
from tunery.server.storage import UnsafePathError, safe_join
from tunery.spec.eval_metrics import METRICS

Sort = Literal["index", "worst", "best"]
Change = Literal["better", "worse", "same"]
#: scores closer than this are the same
TOLERANCE = 1e-9


class SampleError(InvalidError):
    """A samples request that cannot be answered (HTTP 422); ``param`` names the query parameter."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}", {"param": param})


@dataclass(frozen=True)
class Sample:
    index: int
    prompt: str
    label: str
    predict: str
    scores: dict[str, float]
    predict_b: str | None = None
    winner: str | None = None
    subject: str | None = None

    def matches(self, needle: str) -> bool:
        fields = (self.prompt, self.label, self.predict, self.predict_b or "")
        return any(needle in text.casefold() for text in fields)

    def public(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "prompt": self.prompt,
            "label": self.label,
            "predict": self.predict,
            "predict_b": self.predict_b,
            "winner": self.winner if self.winner in ("a", "b", "tie") else None,
            "subject": self.subject,
            "scores": self.scores,
        }


def results_of(session: Session, job_ids: Sequence[str]) -> dict[str, list[EvalResult]]:
    """Each job's results, by name."""
    found: dict[str, list[EvalResult]] = {job_id: [] for job_id in job_ids}
    rows = session.scalars(
        select(EvalResult).where(EvalResult.job_id.in_(list(job_ids))).order_by(EvalResult.job_id, EvalResult.name)
    )
    for row in rows:
        found[row.job_id].append(row)
    return found


def result_of(session: Session, job: Job, name: str | None) -> EvalResult:
    """The job's result ``name`` (or its only one); SampleError naming ``param`` otherwise."""
    results = results_of(session, [job.id])[job.id]
    if name is not None:
        for result in results:
            if result.name == name:
                return result
        known = ", ".join(r.name for r in results) or "none yet"
        raise NotFoundError(f"job {job.id} has no result '{name}' (results: {known})")
    if len(results) == 1:
        return results[0]
    if not results:
        kind = "not an eval job" if job.kind != JobKind.EVAL else f"{job.status.value} and has no results yet"
        raise NotFoundError(f"job {job.id} is {kind}")
    raise SampleError("result", "the job has several results; name one: " + ", ".join(r.name for r in results))


def load_samples(storage_root: Path, result: EvalResult) -> list[Sample]:
    """The result's rows; [] when it kept none. Paths outside the storage root are never read."""
    if not result.samples_file:
        return []
    try:
        path = safe_join(storage_root, result.samples_file)
    except UnsafePathError as exc:
        raise NotFoundError("the samples file is not inside the storage root") from exc
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise NotFoundError("the samples file is missing") from exc
    return _read(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int) -> list[Sample]:
    """Parsed rows of a samples file (cached while it is unchanged: paging re-reads it)."""
    samples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                samples.append(_sample(row, number))
    return samples


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _sample(row: dict[str, Any], number: int) -> Sample:
    index = row.get("index")
    raw_scores = row.get("scores")
    scores = {
        str(name): float(value)
        for name, value in (raw_scores.items() if isinstance(raw_scores, dict) else ())
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
    return Sample(
        index=index if isinstance(index, int) and not isinstance(index, bool) else number,
        prompt=_text(row.get("prompt")),
        label=_text(row.get("label")),
        predict=_text(row.get("predict")),
        scores=scores,
        predict_b=_text(row["predict_b"]) if "predict_b" in row else None,
        winner=str(row["winner"]) if row.get("winner") is not None else None,
        subject=_text(row["subject"]) if row.get("subject") is not None else None,
    )


def default_metric(samples: Sequence[Sample]) -> str | None:
    """The first metric of the catalog with a better direction that the rows score."""
    present: set[str] = set()
    for sample in samples[:100]:
        present.update(sample.scores)
    return next((m.name for m in METRICS if m.higher_is_better is not None and m.name in present), None)


def _metric(samples: Sequence[Sample], metric: str | None) -> tuple[str, bool]:
    """The metric to order or compare by, and whether higher is better; SampleError naming ``metric``."""
    name = metric or default_metric(samples)
    if name is None:
        raise SampleError("metric", "the rows have no score with a better direction; name a metric")
    higher = direction(name)
    if higher is None:
        raise SampleError("metric", f"'{name}' has no better direction (or is not a known metric)")
    return name, higher


def sample_page(
    samples: list[Sample], sort: Sort, metric: str | None, q: str | None, offset: int, limit: int
) -> tuple[list[Sample], int]:
    """Rows matching ``q`` (in prompt, label or answers), ordered, one page of them, and how many match."""
    chosen = [s for s in samples if s.matches(q.casefold())] if q else list(samples)
    if sort == "index":
        chosen.sort(key=lambda s: s.index)
    else:
        name, higher = _metric(samples, metric)
        # rows without the score last; worst first: ascending when higher is better
        flip = (sort == "worst") == higher
        chosen.sort(key=lambda s: (name not in s.scores, (1 if flip else -1) * s.scores.get(name, 0.0), s.index))
    return chosen[offset : offset + limit], len(chosen)


@dataclass
class Diff:
    items: list[dict[str, Any]]
    total: int
    counts: dict[Change, int]
    metric: str


def compare(a: float | None, b: float | None, higher: bool) -> Change:
    if a is None or b is None or abs(b - a) <= TOLERANCE:
        return "same"
    return "better" if (b > a) == higher else "worse"


def diff_samples(
    a: list[Sample], b: list[Sample], metric: str | None, changed_only: bool, offset: int, limit: int
) -> Diff:
    """B against A on the samples both have (matched by index), by the metric's direction."""
    name, higher = _metric(a + b, metric)
    by_index = {sample.index: sample for sample in b}
    rows: list[dict[str, Any]] = []
    counts: dict[Change, int] = {"better": 0, "worse": 0, "same": 0}
    for left in sorted(a, key=lambda s: s.index):
        right = by_index.get(left.index)
        if right is None:
            continue
        score_a, score_b = left.scores.get(name), right.scores.get(name)
        change = compare(score_a, score_b, higher)
        counts[change] += 1
        if changed_only and left.predict == right.predict:  # which answers changed (scores may tie, e.g. BLEU 0)
            continue
        rows.append(
            {
                "index": left.index,
                "prompt": left.prompt,
                "label": left.label,
                "predict_a": left.predict,
                "predict_b": right.predict,
                "score_a": score_a,
                "score_b": score_b,
                "change": change,
            }
        )
    return Diff(rows[offset : offset + limit], len(rows), counts, name)


def common_result(results_a: list[EvalResult], results_b: list[EvalResult], name: str | None) -> str:
    """The result name both runs have: ``name``, or their only common one; SampleError naming ``result``."""
    names_a, names_b = {r.name for r in results_a}, {r.name for r in results_b}
    if name is not None:
        if name not in names_a or name not in names_b:
            known = f"a: {sorted(names_a)}, b: {sorted(names_b)}"
            raise SampleError("result", f"both jobs need a result '{name}' ({known})")
        return name
    common = sorted(names_a & names_b)
    if len(common) == 1:
        return common[0]
    if not common:
        raise SampleError("result", f"the jobs share no result (a: {sorted(names_a)}, b: {sorted(names_b)})")
    raise SampleError("result", "the jobs share several results; name one: " + ", ".join(common))
