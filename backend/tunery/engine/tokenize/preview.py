"""``tunery preview``: how examples are tokenized, which spans are trained, and length statistics.

:func:`preview` writes text (or JSON lines); :func:`preview_data` returns the JSON the dataset preview
screen shows (``tunery.server.preview_runner``)::

    {"examples": [EXAMPLE, ...], "stats": STATS}

EXAMPLE (every stage): ``file``, ``row`` (1-based), ``tokens``, ``trained_tokens``, ``truncated_from``
(the untruncated length when the cutoff cut the row, else null) and ``spans``: ``[{"trained": bool,
"text": str}, ...]``, the row's text in runs of trained / masked tokens. The preference and RL stages add:

- pairwise (rm, dpo): ``prompt``, ``chosen``, ``rejected``: each ``{"tokens": int, "text": str}``; the
  prompt is masked, both answers are trained. ``spans`` shows the chosen sequence (masked prompt, trained
  chosen answer); ``tokens`` counts prompt + chosen + rejected, ``trained_tokens`` chosen + rejected;
  ``truncated_from`` is prompt + the longer answer before the cutoff.
- kto: ``prompt``, ``completion`` (``{"tokens", "text"}``) and ``label`` (true: desirable).
- prompt (ppo, grpo): ``prompt`` (``{"tokens", "text"}``, ending with the assistant opener) and
  ``reference`` (the row's answer text, or null); ``spans`` is the masked prompt, ``trained_tokens`` 0.

STATS (every stage): ``examples`` (rows shown by the statistics), ``sampled`` (only the first rows were
read), ``tokens``, ``trained_tokens``, ``truncated``, ``cutoff_len``, ``lengths`` (min, mean, p50, p95, max
of the untruncated lengths) and ``histogram`` (``[[upper bound, count], ...]``, the last bucket holds
everything over the cutoff). The preference and RL stages add ``kind`` ("pairwise" | "kto" | "prompt")
and ``dropped`` (rows whose prompt left no room for the answer); kto adds ``desirable`` / ``undesirable``,
prompt adds ``with_reference``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from itertools import islice
from typing import Any, Literal

import numpy as np

from tunery.engine.data.api import LoadedData
from tunery.engine.data.types import Example
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize import preview_columns
from tunery.engine.tokenize.columns import ColumnRows
from tunery.engine.tokenize.encode import Recipe, encode_sequences
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.packing import greedy_knapsack
from tunery.engine.tokenize.pipeline import load_data, recipe_for
from tunery.engine.tokenize.preference import encode_column_rows
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows
from tunery.engine.tokenize.stats import length_histogram, summarize_lengths
from tunery.spec.job import JobSpec

PreviewFormat = Literal["text", "jsonl"]

#: Rows read for statistics when the data is streamed (its length is unknown).
STREAM_SAMPLE = 10_000

_ANSI = {"trained": "\033[1;32m", "masked": "\033[2;37m", "head": "\033[1;36m", "reset": "\033[0m"}


def preview(
    spec: JobSpec,
    n: int,
    tokenizer: Any,
    template: ChatTemplate | None,
    *,
    format: PreviewFormat = "text",
    color: bool | None = None,
) -> str:
    """The first ``n`` training examples as the model will see them, plus token-length statistics.

    ``format="text"``: trained spans coloured (``color``; default: when stdout is a terminal) or
    wrapped in ``[[trained]]…[[/trained]]`` / ``[[masked]]…[[/masked]]`` markers.
    ``format="jsonl"``: one ``{"input_ids": [...], "labels": [...]}`` object per line.
    """
    return preview_loaded(load_data(spec), spec, n, tokenizer, template, format=format, color=color)


def preview_loaded(
    loaded: LoadedData,
    spec: JobSpec,
    n: int,
    tokenizer: Any,
    template: ChatTemplate | None,
    *,
    format: PreviewFormat = "text",
    color: bool | None = None,
) -> str:
    """:func:`preview` of already loaded examples."""
    recipe = recipe_for(spec, template)
    examples: Iterable[Example] = loaded.train
    if spec.data.streaming:
        examples = islice(examples, STREAM_SAMPLE)
    if recipe.row_kind is not None:
        return _columns_text(list(examples), n, tokenizer, template, recipe, format, color)
    if format == "jsonl":
        rows, _, _ = encode_sequences(list(islice(examples, n)), tokenizer, template, recipe)
        return "".join(
            json.dumps({"input_ids": item["input_ids"], "labels": item["labels"]}) + "\n"
            for item in (rows.row(i) for i in range(len(rows)))
        )
    sample = list(examples)
    rows, full_lengths, truncated = encode_sequences(sample, tokenizer, template, recipe)
    use_color = sys.stdout.isatty() if color is None else color
    parts = [
        _render_example(i, sample[i], rows, full_lengths, tokenizer, recipe, use_color)
        for i in range(min(n, len(rows)))
    ]
    parts.append(_stats_text(rows, full_lengths, truncated, recipe, spec.data.streaming))
    return "\n".join(parts)


def _column_rows(
    examples: Sequence[Example], tokenizer: Any, template: ChatTemplate | None, recipe: Recipe
) -> ColumnRows:
    if template is None or recipe.row_kind is None:
        raise TokenizeError(f"stage '{recipe.stage}' needs a chat template")
    return encode_column_rows(recipe.row_kind, examples, tokenizer, template, recipe.options)


def _columns_text(
    sample: list[Example],
    n: int,
    tokenizer: Any,
    template: ChatTemplate | None,
    recipe: Recipe,
    format: PreviewFormat,
    color: bool | None,
) -> str:
    """Preview of preference / RL rows: both answers of a pair, a KTO row's label, a prompt's reference."""
    cutoff = recipe.options.cutoff_len
    if format == "jsonl":  # the rows the stage trains on (tunery.engine.tokenize.columns)
        rows = _column_rows(sample[:n], tokenizer, template, recipe)
        return "".join(json.dumps(rows.row(i)) + "\n" for i in range(len(rows)))
    rows = _column_rows(sample, tokenizer, template, recipe)
    use_color = sys.stdout.isatty() if color is None else color
    parts = [
        preview_columns.render_example(rows, i, sample, tokenizer, cutoff, use_color) for i in range(min(n, len(rows)))
    ]
    parts.append(preview_columns.stats_text(rows, len(sample), cutoff))
    return "\n".join(parts)


def preview_data(
    spec: JobSpec, n: int, tokenizer: Any, template: ChatTemplate | None, *, sample: int = STREAM_SAMPLE
) -> dict[str, Any]:
    """The first ``n`` rows and statistics of the first ``sample`` examples as JSON (see the module doc)."""
    recipe = recipe_for(spec, template)
    examples = list(islice(load_data(spec).train, sample))
    cutoff = recipe.options.cutoff_len
    sampled = len(examples) == sample
    if recipe.row_kind is not None:
        rows = _column_rows(examples, tokenizer, template, recipe)
        shown = [preview_columns.example_json(rows, i, examples, tokenizer, cutoff) for i in range(min(n, len(rows)))]
        stats = {"kind": rows.kind, **preview_columns.stats_json(rows, len(examples), cutoff, sampled)}
        return {"examples": shown, "stats": stats}
    token_rows, full_lengths, truncated = encode_sequences(examples, tokenizer, template, recipe)
    items = []
    for index in range(min(n, len(token_rows))):
        item = token_rows.row(index)
        ids, labels = item["input_ids"], item["labels"]
        ref = examples[index].ref
        full = int(full_lengths[index])
        items.append({
            "file": ref.file if ref else None,
            "row": ref.row if ref else None,
            "tokens": len(ids),
            "trained_tokens": sum(1 for label in labels if label != IGNORE_INDEX),
            "truncated_from": full if full > cutoff else None,
            "spans": [
                {"trained": trained, "text": tokenizer.decode(span, skip_special_tokens=False)}
                for trained, span in _spans(ids, labels)
            ],
        })  # fmt: skip
    stats = {
        "examples": len(token_rows),
        "sampled": sampled,
        "tokens": int(token_rows.lengths.sum()),
        "trained_tokens": int(np.count_nonzero(token_rows.labels != IGNORE_INDEX)),
        "truncated": int(truncated),
        "cutoff_len": cutoff,
        "lengths": asdict(summarize_lengths(full_lengths)),
        "histogram": [[int(bound), int(count)] for bound, count in length_histogram(full_lengths, cutoff)],
    }
    return {"examples": items, "stats": stats}


def _cutoff_label(recipe: Recipe) -> str:
    cutoff = recipe.options.cutoff_len
    reserved = recipe.packing and recipe.stage != "pt"
    return f"cutoff_len={cutoff + 1} - 1 (packing)" if reserved else f"cutoff_len={cutoff}"


def _spans(ids: list[int], labels: list[int]) -> list[tuple[bool, list[int]]]:
    """Runs of consecutive tokens that are all trained or all masked."""
    spans: list[tuple[bool, list[int]]] = []
    for token, label in zip(ids, labels, strict=True):
        trained = label != IGNORE_INDEX
        if spans and spans[-1][0] == trained:
            spans[-1][1].append(token)
        else:
            spans.append((trained, [token]))
    return spans


def _render_example(
    index: int,
    example: Example,
    rows: TokenRows,
    full_lengths: np.ndarray,
    tokenizer: Any,
    recipe: Recipe,
    color: bool,
) -> str:
    item = rows.row(index)
    ids, labels = item["input_ids"], item["labels"]
    trained = sum(1 for label in labels if label != IGNORE_INDEX)
    where = f" ({example.ref.file}, row {example.ref.row})" if example.ref else ""
    head = f"=== Example {index + 1}{where}: {len(ids)} tokens, {trained} trained"
    if int(full_lengths[index]) > recipe.options.cutoff_len:
        head += f", truncated from {int(full_lengths[index])} by {_cutoff_label(recipe)}"
    head += " ==="
    body = []
    for is_trained, span in _spans(ids, labels):
        text = tokenizer.decode(span, skip_special_tokens=False)
        kind = "trained" if is_trained else "masked"
        body.append(f"{_ANSI[kind]}{text}{_ANSI['reset']}" if color else f"[[{kind}]]{text}[[/{kind}]]")
    if color:
        head = f"{_ANSI['head']}{head}{_ANSI['reset']}"
    return head + "\n" + "".join(body) + "\n"


def _stats_text(rows: TokenRows, full_lengths: np.ndarray, truncated: int, recipe: Recipe, streamed: bool) -> str:
    lengths = rows.lengths
    summary = summarize_lengths(lengths)
    count = len(rows)
    cutoff = recipe.options.cutoff_len
    trained = int(np.count_nonzero(rows.labels != IGNORE_INDEX))
    share = 100.0 * truncated / count if count else 0.0
    lines = [
        "=== Token statistics" + (f" (first {count} streamed rows)" if streamed else "") + " ===",
        f"rows: {count}   tokens: {int(lengths.sum())}   trained tokens: {trained}",
        f"length (tokens): min {summary.min}  mean {summary.mean}  p50 {summary.p50}  "
        f"p95 {summary.p95}  max {summary.max}",
    ]
    if recipe.stage == "pt" and recipe.packing:
        blocks = int(full_lengths.sum()) // cutoff
        lines.append(f"packing: documents concatenated into {blocks} blocks of {cutoff} tokens (none truncated)")
        return "\n".join(lines) + "\n"
    lines.append(f"truncated by {_cutoff_label(recipe)}: {truncated} of {count} rows ({share:.1f}%)")
    if recipe.pack_mode != "none" and count:
        bins = len(greedy_knapsack(lengths.tolist(), cutoff))
        lines.append(f"packing: {count} sequences into {bins} rows of <= {cutoff} tokens ({recipe.pack_mode})")
    return "\n".join(lines) + "\n"
