"""The alpaca format: instruction + input -> output, with optional history, system, tools and media.

Pretraining rows also use it: the text is the ``prompt`` column (``text`` when it is not mapped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunery.engine.data.api import DataError
from tunery.engine.data.formats.base import (
    Context,
    Converter,
    RowProblem,
    check_answer,
    check_pair,
    check_placeholders,
    kind,
    kto_label_of,
    media_of,
    missing,
    no_text,
    optional_text,
    register_format,
    required_text,
    system_of,
    tools_of,
)
from tunery.engine.data.types import Example, Message, Role, RowRef

if TYPE_CHECKING:
    from tunery.engine.data.registry import DatasetAttr


def history_turns(row: dict[str, Any], column: str | None) -> list[Message]:
    """[[query, answer], ...] pairs as user/assistant turns."""
    if column is None:
        return []
    history = row.get(column)
    if history is None:
        return []
    if type(history) is not list:
        raise RowProblem(column, f"expected a list of [query, answer] pairs, got {kind(history)}")
    turns = []
    for index, pair in enumerate(history):
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise RowProblem(f"{column}[{index}]", f"expected a [query, answer] pair, got {kind(pair)}")
        for position in (0, 1):
            if type(pair[position]) is not str:
                raise RowProblem(f"{column}[{index}][{position}]", f"expected a string, got {kind(pair[position])}")
        turns.append(Message(Role.USER, pair[0]))
        turns.append(Message(Role.ASSISTANT, pair[1]))
    return turns


@register_format("alpaca")
def alpaca_converter(attr: DatasetAttr, context: Context) -> Converter:
    shape = context.shape
    prompt_col, query_col, response_col = attr.prompt, attr.query, attr.response
    if shape == "pairwise" and (attr.chosen is None or attr.rejected is None):
        raise DataError(
            f"dataset '{attr.name}': preference data needs 'chosen' and 'rejected' columns in dataset_info.json"
        )
    if shape == "kto" and attr.kto_tag is None:
        raise DataError(f"dataset '{attr.name}': KTO data needs a 'kto_tag' column in dataset_info.json")
    if shape in ("sft", "kto") and response_col is None:
        raise DataError(f"dataset '{attr.name}': SFT data needs a 'response' column in dataset_info.json")
    explicit_prompt = "prompt" in attr.explicit

    def user_text(row: dict[str, Any]) -> str:
        parts = []
        if prompt_col is not None:
            if prompt_col not in row:
                raise missing(prompt_col, row)
            instruction = optional_text(row, prompt_col)
            if instruction:
                parts.append(instruction)
        query = optional_text(row, query_col)
        if query:
            parts.append(query)
        return "\n".join(parts)

    def pretraining(row: dict[str, Any], ref: RowRef) -> Example:
        if not explicit_prompt and ("text" in row or prompt_col not in row):
            field, text = "text", required_text(row, "text")
        else:
            field, text = prompt_col or query_col or "text", user_text(row)
        if not text.strip():  # LLaMA-Factory would train on the eos token alone
            raise RowProblem(field, "the text is empty")
        return Example([], [Message(Role.ASSISTANT, text)], ref=ref)

    def convert(row: dict[str, Any], ref: RowRef) -> Example:
        prompt = history_turns(row, attr.history)
        question = user_text(row)
        prompt.append(Message(Role.USER, question))
        text_columns = [column for column in (prompt_col, query_col, response_col) if column and column in row]
        label = kto_label_of(row, attr.kto_tag, required=shape == "kto")
        if shape == "pairwise":
            chosen = Message(Role.ASSISTANT, required_text(row, attr.chosen or ""))
            rejected = Message(Role.ASSISTANT, required_text(row, attr.rejected or ""))
            check_pair(chosen, rejected, attr.chosen or "", attr.rejected or "")
            response = [chosen, rejected]
        elif shape == "unsupervised":
            answer = optional_text(row, response_col)  # the optional reference answer
            response = [Message(Role.ASSISTANT, answer)] if answer else []
            if not question.strip() and not (answer or "").strip() and len(prompt) == 1:
                raise no_text(prompt_col or query_col or "row", text_columns)
        else:
            response = [Message(Role.ASSISTANT, required_text(row, response_col or ""))]
            if not response[0].content.strip() and not question.strip() and len(prompt) == 1:
                raise no_text(response_col or "", text_columns)
            check_answer(response[0], response_col or "")  # an empty answer trains nothing
        example = Example(
            prompt,
            response,
            system_of(row, attr.system),
            tools_of(row, attr.tools, context),
            label,
            media_of(row, attr.images, context),
            media_of(row, attr.videos, context),
            media_of(row, attr.audios, context),
            ref,
        )
        check_placeholders(attr, example)
        return example

    return pretraining if shape == "pt" else convert
