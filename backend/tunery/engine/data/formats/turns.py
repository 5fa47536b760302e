"""Turning an aligned list of turns into an example of the wanted shape (shared by sharegpt and openai)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tunery.engine.data.formats.base import (
    Context,
    RowProblem,
    check_answer,
    check_pair,
    check_placeholders,
    kto_label_of,
    media_of,
    tools_of,
)
from tunery.engine.data.types import Example, Message, Role, RowRef
from tunery.spec.stages import stages_for_shape

if TYPE_CHECKING:
    from tunery.engine.data.registry import DatasetAttr

USER_SIDE = (Role.USER, Role.OBSERVATION)
BOT_SIDE = (Role.ASSISTANT, Role.FUNCTION)
SIDE_NAMES = {True: "user/observation", False: "assistant/function_call"}


def check_order(turns: list[Message], field_of: Callable[[int], str]) -> None:
    """Turns alternate: user or observation first, then assistant or function_call, and so on."""
    for index, turn in enumerate(turns):
        user_turn = index % 2 == 0
        if turn.role in (USER_SIDE if user_turn else BOT_SIDE):
            continue
        if index == 0:
            message = f"the conversation must start with a user turn, got {turn.role.value}"
        else:
            message = f"two {SIDE_NAMES[not user_turn]} turns in a row; turns must alternate user and assistant"
        raise RowProblem(field_of(index), message)


def split_turns(
    turns: list[Message], field_of: Callable[[int], str], column: str, shape: str
) -> tuple[list[Message], list[Message]]:
    """(prompt, response) of an SFT-like conversation: it must end with an assistant turn."""
    if not turns:
        raise RowProblem(column, "the conversation is empty")
    check_order(turns, field_of)
    if len(turns) % 2:
        prompt_stages = ", ".join(stages_for_shape("prompt"))
        raise RowProblem(
            column,
            f"the conversation ends with a {turns[-1].role.value} turn; {shape} data needs it to "
            f"end with an assistant turn (the answer); prompt-only data suits stages {prompt_stages}",
        )
    return turns[:-1], turns[-1:]


def build_example(
    attr: DatasetAttr,
    context: Context,
    row: dict[str, Any],
    ref: RowRef,
    turns: list[Message],
    field_of: Callable[[int], str],
    system: str | None,
    pair: tuple[Message, Message] | None = None,
) -> Example:
    """The example of a turn-based row (sharegpt, openai) for the context's shape. ``field_of(i)``: the path of
    turn ``i`` in the row (e.g. ``conversations[3]``)."""
    column = attr.messages or "messages"
    shape = context.shape
    label = None

    def role_field(position: int) -> str:
        return f"{field_of(position)}.{attr.role_tag}"

    def content_field(position: int) -> str:
        return f"{field_of(position)}.{attr.content_tag}"

    if shape == "pt":
        if not turns:
            raise RowProblem(column, "the conversation is empty")
        if not turns[0].content.strip():  # LLaMA-Factory would train on the eos token alone
            raise RowProblem(content_field(0), "the text is empty")
        prompt: list[Message] = []
        response = [Message(Role.ASSISTANT, turns[0].content)]
    elif shape == "pairwise":
        if not turns:
            raise RowProblem(column, "the conversation is empty")
        check_order(turns, role_field)
        if len(turns) % 2 == 0:
            raise RowProblem(
                column,
                "preference data needs the conversation to end with a user turn; "
                f"the answers go in '{attr.chosen}' and '{attr.rejected}'",
            )
        assert pair is not None
        content = attr.content_tag
        check_pair(pair[0], pair[1], f"{attr.chosen}.{content}", f"{attr.rejected}.{content}")
        prompt, response = turns, [pair[0], pair[1]]
    elif shape == "unsupervised":  # ppo, grpo: a prompt, with or without a reference answer
        if len(turns) % 2:
            check_order(turns, role_field)
            prompt, response = turns, []
        else:
            prompt, response = split_turns(turns, role_field, column, "prompt")
            if not response[0].content.strip():  # an empty reference is no reference (as in LLaMA-Factory)
                response = []
        if not system and not any(turn.content.strip() for turn in prompt) and not response:
            raise RowProblem(content_field(len(prompt) - 1), "the row has no text (every turn is empty)")
    else:
        prompt, response = split_turns(turns, role_field, column, "SFT" if shape != "kto" else "KTO")
        label = kto_label_of(row, attr.kto_tag, required=shape == "kto")
        # an empty answer trains nothing (LLaMA-Factory trains its end-of-turn tokens only)
        check_answer(response[0], content_field(len(turns) - 1), "the answer (last assistant turn)")
    example = Example(
        prompt,
        response,
        system,
        tools_of(row, attr.tools, context),
        label,
        media_of(row, attr.images, context),
        media_of(row, attr.videos, context),
        media_of(row, attr.audios, context),
        ref,
    )
    if shape != "pt":
        check_placeholders(attr, example)
    return example
