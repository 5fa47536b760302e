"""``tunery preview``: how examples are tokenized, which spans are trained, and length statistics."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from itertools import islice
from typing import Any, Literal

import numpy as np

from tunery.engine.data.api import LoadedData
from tunery.engine.data.types import Example
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.encode import Recipe, encode_sequences
from tunery.engine.tokenize.packing import greedy_knapsack
from tunery.engine.tokenize.pipeline import load_data, recipe_for
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows
from tunery.engine.tokenize.stats import summarize_lengths
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
