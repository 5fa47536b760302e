"""Preview of preference and RL rows (pairwise, kto, prompt): text blocks, JSON objects and statistics.

The JSON shape is documented in ``tunery.engine.tokenize.preview``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from tunery.engine.data.types import Example
from tunery.engine.tokenize.columns import ColumnRows
from tunery.engine.tokenize.stats import length_histogram, summarize_lengths

_ANSI = {"trained": "\033[1;32m", "masked": "\033[2;37m", "head": "\033[1;36m", "reset": "\033[0m"}
#: The trained answer columns of each kind and how they are titled.
ANSWERS = {"pairwise": ("chosen", "rejected"), "kto": ("completion",), "prompt": ()}


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=False))


def _where(example: Example) -> tuple[str | None, int | None]:
    return (example.ref.file, example.ref.row) if example.ref else (None, None)


def row_tokens(rows: ColumnRows) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, trained tokens) per row: the prompt plus every answer, and the answers."""
    answers = rows.answer_lengths()
    trained = np.add.reduce(answers) if answers else np.zeros(len(rows), np.int64)
    return rows.prompt_lengths + trained, trained


def example_json(
    rows: ColumnRows, index: int, examples: Sequence[Example], tokenizer: Any, cutoff_len: int
) -> dict[str, Any]:
    """One row as the preview JSON shows it (SFT's keys first, then the kind's own)."""
    item = rows.row(index)
    example = examples[int(rows.per_row["source"][index])]
    file, row = _where(example)
    prompt_text = _decode(tokenizer, item["prompt_ids"])
    answers = {name: item[f"{name}_ids"] for name in ANSWERS[rows.kind]}
    full = int(rows.per_row["full_length"][index])
    first: list[int] = next(iter(answers.values()), [])
    spans = [{"trained": False, "text": prompt_text}]
    if first:
        spans.append({"trained": True, "text": _decode(tokenizer, first)})
    out: dict[str, Any] = {
        "file": file,
        "row": row,
        "tokens": len(item["prompt_ids"]) + sum(len(ids) for ids in answers.values()),
        "trained_tokens": sum(len(ids) for ids in answers.values()),
        "truncated_from": full if full > cutoff_len else None,
        "spans": spans,
        "prompt": {"tokens": len(item["prompt_ids"]), "text": prompt_text},
    }
    for name, ids in answers.items():
        out[name] = {"tokens": len(ids), "text": _decode(tokenizer, ids)}
    if rows.kind == "kto":
        out["label"] = item["label"]
    elif rows.kind == "prompt":
        out["reference"] = item["reference"]
    return out


def stats_json(rows: ColumnRows, examples: int, cutoff_len: int, sampled: bool) -> dict[str, Any]:
    tokens, trained = row_tokens(rows)
    full = rows.per_row["full_length"]
    out: dict[str, Any] = {
        "examples": len(rows),
        "sampled": sampled,
        "tokens": int(tokens.sum()),
        "trained_tokens": int(trained.sum()),
        "truncated": int(np.count_nonzero(full > cutoff_len)),
        "cutoff_len": cutoff_len,
        "lengths": asdict(summarize_lengths(full)),
        "histogram": [[int(bound), int(count)] for bound, count in length_histogram(full, cutoff_len)],
        "dropped": examples - len(rows),
    }
    if rows.kind == "kto":
        desirable = int(np.count_nonzero(rows.per_row["label"]))
        out.update(desirable=desirable, undesirable=len(rows) - desirable)
    elif rows.kind == "prompt":
        out["with_reference"] = int(np.count_nonzero(rows.per_row["has_reference"]))
    return out


def _mark(text: str, kind: str, color: bool) -> str:
    return f"{_ANSI[kind]}{text}{_ANSI['reset']}" if color else f"[[{kind}]]{text}[[/{kind}]]"


def render_example(
    rows: ColumnRows, index: int, examples: Sequence[Example], tokenizer: Any, cutoff_len: int, color: bool
) -> str:
    """A text block: the masked prompt, then each trained answer (or the reference of a prompt row)."""
    data = example_json(rows, index, examples, tokenizer, cutoff_len)
    where = f" ({data['file']}, row {data['row']})" if data["file"] else ""
    sizes = [f"prompt {data['prompt']['tokens']} tokens"]
    sizes += [f"{name} {data[name]['tokens']}" for name in ANSWERS[rows.kind]]
    head = f"=== Example {index + 1}{where}: " + ", ".join(sizes)
    if rows.kind == "kto":
        head += ", label: " + ("desirable" if data["label"] else "undesirable")
    if data["truncated_from"] is not None:
        head += f", truncated from {data['truncated_from']} by cutoff_len={cutoff_len}"
    head += " ==="
    if color:
        head = f"{_ANSI['head']}{head}{_ANSI['reset']}"
    body = _mark(data["prompt"]["text"], "masked", color)
    if rows.kind == "kto":
        body += _mark(data["completion"]["text"], "trained", color)
    elif rows.kind == "pairwise":
        for name in ANSWERS["pairwise"]:
            body += f"\n--- {name} ---\n" + _mark(data[name]["text"], "trained", color)
    else:
        reference = data["reference"]
        body += "\n--- reference ---\n" + (reference if reference is not None else "(none)")
    return head + "\n" + body + "\n"


def stats_text(rows: ColumnRows, examples: int, cutoff_len: int) -> str:
    data = stats_json(rows, examples, cutoff_len, sampled=False)
    lengths = summarize_lengths(rows.sequence_lengths())
    measured = "prompt" if rows.kind == "prompt" else "prompt + longest answer"
    count = len(rows)
    share = 100.0 * data["truncated"] / count if count else 0.0
    lines = [
        "=== Token statistics ===",
        f"rows: {count}   tokens: {data['tokens']}   trained tokens: {data['trained_tokens']}",
        f"length (tokens, {measured}): min {lengths.min}  mean {lengths.mean}  p50 {lengths.p50}  "
        f"p95 {lengths.p95}  max {lengths.max}",
        f"truncated by cutoff_len={cutoff_len}: {data['truncated']} of {count} rows ({share:.1f}%)",
    ]
    if data["dropped"]:
        lines.append(
            f"dropped: {data['dropped']} of {examples} rows (the prompt leaves no room for the answer "
            f"within cutoff_len={cutoff_len})"
        )
    if rows.kind == "kto":
        lines.append(f"labels: {data['desirable']} desirable, {data['undesirable']} undesirable")
    elif rows.kind == "prompt":
        lines.append(f"with a reference answer: {data['with_reference']} of {count} rows")
    return "\n".join(lines) + "\n"
