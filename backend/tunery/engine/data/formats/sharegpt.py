"""The sharegpt format: a list of turns with role tags (human/gpt/observation/function_call/system)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunery.engine.data.api import DataError
from tunery.engine.data.formats.base import (
    Context,
    Converter,
    RowProblem,
    kind,
    missing,
    register_format,
    system_of,
)
from tunery.engine.data.formats.turns import BOT_SIDE, build_example
from tunery.engine.data.types import Example, Message, Role, RowRef

if TYPE_CHECKING:
    from tunery.engine.data.registry import DatasetAttr


def role_map(attr: DatasetAttr) -> dict[Any, Role]:
    pairs = (
        (attr.user_tag, Role.USER),
        (attr.assistant_tag, Role.ASSISTANT),
        (attr.observation_tag, Role.OBSERVATION),
        (attr.function_tag, Role.FUNCTION),
    )
    return {tag: role for tag, role in pairs if tag is not None}


def check_columns(attr: DatasetAttr, context: Context) -> str:
    """Dataset-level checks of a turn-based format; returns the messages column."""
    if attr.messages is None:
        raise DataError(f"dataset '{attr.name}': the {attr.formatting} format needs a 'messages' column")
    if context.shape == "pairwise" and (attr.chosen is None or attr.rejected is None):
        raise DataError(
            f"dataset '{attr.name}': preference data needs 'chosen' and 'rejected' columns in dataset_info.json"
        )
    if context.shape == "kto" and attr.kto_tag is None:
        raise DataError(f"dataset '{attr.name}': KTO data needs a 'kto_tag' column in dataset_info.json")
    return attr.messages


def answer_of(row: dict[str, Any], column: str, attr: DatasetAttr, roles: dict[Any, Role]) -> Message:
    """A chosen/rejected answer: one assistant (or function_call) turn object."""
    try:
        value = row[column]
    except KeyError:
        raise missing(column, row) from None
    if type(value) is not dict:
        raise RowProblem(column, f"expected an assistant turn object, got {kind(value)}")
    tag = value.get(attr.role_tag)
    role = roles.get(tag) if type(tag) is str else None
    if role not in BOT_SIDE:
        raise RowProblem(f"{column}.{attr.role_tag}", f"expected an assistant turn, got {tag!r}")
    content = value.get(attr.content_tag)
    if type(content) is not str:
        raise RowProblem(f"{column}.{attr.content_tag}", f"expected a string, got {kind(content)}")
    return Message(role, content)


@register_format("sharegpt")
def sharegpt_converter(attr: DatasetAttr, context: Context) -> Converter:
    column = check_columns(attr, context)
    role_tag, content_tag, system_tag = attr.role_tag, attr.content_tag, attr.system_tag
    roles = role_map(attr)
    known = ", ".join(repr(tag) for tag in [*roles, system_tag] if tag is not None)
    pairwise = context.shape == "pairwise"

    def convert(row: dict[str, Any], ref: RowRef) -> Example:
        try:
            messages = row[column]
        except KeyError:
            raise missing(column, row) from None
        if type(messages) is not list:
            raise RowProblem(column, f"expected a list of turns, got {kind(messages)}")
        start = 0
        system = None
        first = messages[0] if messages else None
        if system_tag is not None and type(first) is dict and first.get(role_tag) == system_tag:
            system = first.get(content_tag)
            if system is not None and type(system) is not str:
                raise RowProblem(f"{column}[0].{content_tag}", f"expected a string, got {kind(system)}")
            start = 1
        else:
            system = system_of(row, attr.system)
        turns = []
        for index in range(start, len(messages)):
            turn = messages[index]
            if type(turn) is not dict:
                raise RowProblem(f"{column}[{index}]", f"expected a turn object, got {kind(turn)}")
            tag = turn.get(role_tag)
            role = roles.get(tag) if type(tag) is str else None
            if role is None:
                if tag is None:
                    raise RowProblem(f"{column}[{index}]", f"the turn has no '{role_tag}' key")
                if tag == system_tag:
                    raise RowProblem(f"{column}[{index}].{role_tag}", "a system turn is only allowed first")
                raise RowProblem(f"{column}[{index}].{role_tag}", f"unknown role {tag!r}; expected one of {known}")
            content = turn.get(content_tag)
            if type(content) is not str:
                raise RowProblem(f"{column}[{index}].{content_tag}", f"expected a string, got {kind(content)}")
            turns.append(Message(role, content))
        pair = None
        if pairwise:
            pair = (answer_of(row, attr.chosen or "", attr, roles), answer_of(row, attr.rejected or "", attr, roles))

        def field_of(position: int) -> str:
            return f"{column}[{position + start}]"

        return build_example(attr, context, row, ref, turns, field_of, system or None, pair)

    return convert
