"""Preview worker, run as ``python -m tunery.server.preview_runner`` (it imports torch; the API never does).

Reads ``{"spec": {...nested JobSpec...}, "n": 3}`` on stdin; writes one JSON object on stdout:
``{"examples": [...], "stats": {...}}`` or ``{"error": "..."}`` (exit code 2).
Each example: file, row, tokens, trained_tokens, truncated_from, spans [{"trained": bool, "text": str}].
Stats: examples, tokens, trained_tokens, truncated, cutoff_len, and the untruncated token lengths as a
summary (lengths) and a histogram [[upper bound, count]] whose last bucket holds everything over the cutoff.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from itertools import islice
from typing import Any

#: examples read for the statistics (the first ones of the dataset)
STATS_SAMPLE = 10_000


def _spans(tokenizer: Any, ids: list[int], labels: list[int], ignore: int) -> list[dict[str, Any]]:
    runs: list[tuple[bool, list[int]]] = []
    for token, label in zip(ids, labels, strict=True):
        trained = label != ignore
        if runs and runs[-1][0] == trained:
            runs[-1][1].append(token)
        else:
            runs.append((trained, [token]))
    return [{"trained": t, "text": tokenizer.decode(run, skip_special_tokens=False)} for t, run in runs]


def _short(path: str, raw_spec: dict[str, Any]) -> str:
    """A data file relative to the dataset folder (no server path in answers)."""
    import os

    folder = os.path.normpath(str(raw_spec.get("data", {}).get("dataset_dir", "")))
    real = os.path.normpath(os.path.join(folder, path))
    return os.path.relpath(real, folder) if real.startswith(folder + os.sep) else os.path.basename(path)


def build_preview(raw_spec: dict[str, Any], n: int) -> dict[str, Any]:
    import numpy as np

    from tunery.engine.tokenize.encode import encode_sequences
    from tunery.engine.tokenize.pipeline import load_data, recipe_for
    from tunery.engine.tokenize.rows import IGNORE_INDEX
    from tunery.engine.tokenize.stats import length_histogram, summarize_lengths
    from tunery.engine.train.data import load_template
    from tunery.engine.train.model import load_tokenizer
    from tunery.spec import JobSpec

    spec = JobSpec.from_mapping(raw_spec)
    tokenizer = load_tokenizer(spec.model)
    template = load_template(spec, tokenizer)
    recipe = recipe_for(spec, template)
    sample = list(islice(load_data(spec).train, STATS_SAMPLE))
    rows, full_lengths, truncated = encode_sequences(sample, tokenizer, template, recipe)
    cutoff = recipe.options.cutoff_len
    examples = []
    for index in range(min(n, len(rows))):
        item = rows.row(index)
        ids, labels = list(map(int, item["input_ids"])), list(map(int, item["labels"]))
        ref = sample[index].ref
        full = int(full_lengths[index])
        examples.append({
            "file": _short(ref.file, raw_spec) if ref else None,
            "row": ref.row if ref else None,
            "tokens": len(ids),
            "trained_tokens": sum(1 for label in labels if label != IGNORE_INDEX),
            "truncated_from": full if full > cutoff else None,
            "spans": _spans(tokenizer, ids, labels, IGNORE_INDEX),
        })  # fmt: skip
    lengths = rows.lengths
    stats = {
        "examples": len(rows),
        "sampled": len(sample) == STATS_SAMPLE,
        "tokens": int(lengths.sum()),
        "trained_tokens": int(np.count_nonzero(rows.labels != IGNORE_INDEX)),
        "truncated": int(truncated),
        "cutoff_len": cutoff,
        "lengths": asdict(summarize_lengths(full_lengths)),
        "histogram": [[int(bound), int(count)] for bound, count in length_histogram(full_lengths, cutoff)],
    }
    return {"examples": examples, "stats": stats}


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        result = build_preview(request["spec"], int(request.get("n", 3)))
    except Exception as exc:  # reported to the API caller as a 422 with this message
        sys.stdout.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
