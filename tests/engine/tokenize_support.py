"""Helpers shared by the tokenization tests: tokenizer loading, example building, span decoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunery.engine.data.types import Example, Message, Role, RowRef
from tunery.engine.tokenize.rows import IGNORE_INDEX

SHAREGPT_ROLES = {
    "human": Role.USER,
    "gpt": Role.ASSISTANT,
    "function_call": Role.FUNCTION,
    "observation": Role.OBSERVATION,
}


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def conversation(*texts: str, system: str | None = None, tools: str | None = None) -> Example:
    """user, assistant, user, assistant, ... from plain texts."""
    messages = [Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, text) for i, text in enumerate(texts)]
    return Example(prompt=messages[:-1], response=messages[-1:], system=system, tools=tools)


def sharegpt_examples(path: Path, limit: int | None = None) -> list[Example]:
    """The demo sharegpt file as examples (a test-local reader: the data layer is tested elsewhere)."""
    rows = json.loads(path.read_text(encoding="utf-8"))[:limit]
    examples = []
    for number, row in enumerate(rows, start=1):
        messages = [Message(SHAREGPT_ROLES[turn["from"]], turn["value"]) for turn in row["conversations"]]
        examples.append(
            Example(
                prompt=messages[:-1],
                response=messages[-1:],
                system=row.get("system"),
                tools=row.get("tools"),
                ref=RowRef("demo", path.name, number),
            )
        )
    return examples


def alpaca_examples(path: Path, limit: int | None = None) -> list[Example]:
    rows = json.loads(path.read_text(encoding="utf-8"))[:limit]
    examples = []
    for number, row in enumerate(rows, start=1):
        query = row["instruction"] + ("\n" + row["input"] if row.get("input") else "")
        examples.append(
            Example(
                prompt=[Message(Role.USER, query)],
                response=[Message(Role.ASSISTANT, row["output"])],
                ref=RowRef("demo", path.name, number),
            )
        )
    return examples


def trained_spans(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """Runs of consecutive positions whose label is trained, as the label ids."""
    spans: list[list[int]] = []
    previous = False
    for token, label in zip(input_ids, labels, strict=True):
        trained = label != IGNORE_INDEX
        if trained:
            assert label == token, "a trained label must equal its input id"
            if previous:
                spans[-1].append(label)
            else:
                spans.append([label])
        previous = trained
    return spans
