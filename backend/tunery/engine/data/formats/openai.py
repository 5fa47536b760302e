"""The openai format: chat messages with role/content, assistant tool_calls and tool-role results."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tunery.engine.data.formats.base import (
    Context,
    Converter,
    RowProblem,
    kind,
    missing,
    register_format,
    system_of,
)
from tunery.engine.data.formats.sharegpt import answer_of, check_columns, role_map
from tunery.engine.data.formats.turns import build_example
from tunery.engine.data.jsonio import loads
from tunery.engine.data.types import Example, Message, Role, RowRef

if TYPE_CHECKING:
    from tunery.engine.data.registry import DatasetAttr

#: Consecutive tool results become one observation turn, joined as LLaMA-Factory joins them.
TOOL_RESULT_SEPARATOR = "\n</tool_response>\n<tool_response>\n"


def content_text(value: Any, field: str, allow_none: bool) -> str:
    """A message's content: a string, or a list of text parts joined."""
    if type(value) is str:
        return value
    if value is None and allow_none:
        return ""
    if type(value) is list:
        texts = []
        for index, part in enumerate(value):
            if type(part) is not dict or part.get("type") != "text" or type(part.get("text")) is not str:
                raise RowProblem(f"{field}[{index}]", "only text parts ({'type': 'text', 'text': ...}) are supported")
            texts.append(part["text"])
        return "".join(texts)
    raise RowProblem(field, f"expected a string, got {kind(value)}")


def tool_calls_text(calls: list[Any], field: str) -> str:
    """The calls as JSON: {"name", "arguments"} (a list of them when there are several)."""
    normalized = []
    for index, call in enumerate(calls):
        where = f"{field}[{index}]"
        function = call.get("function", call) if type(call) is dict else None
        if type(function) is not dict:
            raise RowProblem(where, f"expected a tool call object, got {kind(call)}")
        name = function.get("name")
        if type(name) is not str or not name:
            raise RowProblem(f"{where}.function.name", f"expected the function name, got {kind(name)}")
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = loads(arguments)
            except ValueError as exc:
                raise RowProblem(f"{where}.function.arguments", f"arguments are not valid JSON: {exc}") from None
        if type(arguments) is not dict:
            raise RowProblem(f"{where}.function.arguments", f"arguments must be a JSON object, got {kind(arguments)}")
        normalized.append({"name": name, "arguments": arguments})
    return json.dumps(normalized[0] if len(normalized) == 1 else normalized, ensure_ascii=False)


@register_format("openai")
def openai_converter(attr: DatasetAttr, context: Context) -> Converter:
    column = check_columns(attr, context)
    role_tag, content_tag, system_tag = attr.role_tag, attr.content_tag, attr.system_tag
    roles = role_map(attr)
    known = ", ".join(repr(tag) for tag in [*roles, system_tag] if tag is not None)
    bot_tags = (attr.assistant_tag, attr.function_tag)
    pairwise = context.shape == "pairwise"

    def convert(row: dict[str, Any], ref: RowRef) -> Example:
        try:
            messages = row[column]
        except KeyError:
            raise missing(column, row) from None
        if type(messages) is not list:
            raise RowProblem(column, f"expected a list of messages, got {kind(messages)}")
        start = 0
        first = messages[0] if messages else None
        if system_tag is not None and type(first) is dict and first.get(role_tag) == system_tag:
            system: str | None = content_text(first.get(content_tag), f"{column}[0].{content_tag}", True)
            start = 1
        else:
            system = system_of(row, attr.system)
        turns: list[Message] = []
        origins: list[int] = []
        results: list[str] = []
        for index in range(start, len(messages)):
            message = messages[index]
            if type(message) is not dict:
                raise RowProblem(f"{column}[{index}]", f"expected a message object, got {kind(message)}")
            tag = message.get(role_tag)
            role = roles.get(tag) if type(tag) is str else None
            if role is None:
                if tag is None:
                    raise RowProblem(f"{column}[{index}]", f"the message has no '{role_tag}' key")
                if tag == system_tag:
                    raise RowProblem(f"{column}[{index}].{role_tag}", "a system message is only allowed first")
                raise RowProblem(f"{column}[{index}].{role_tag}", f"unknown role {tag!r}; expected one of {known}")
            calls = message.get("tool_calls")
            where = f"{column}[{index}].{content_tag}"
            if role is Role.OBSERVATION:
                results.append(content_text(message.get(content_tag), where, False))
                if index + 1 < len(messages) and _tag(messages[index + 1], role_tag) == tag:
                    continue
                turns.append(Message(Role.OBSERVATION, TOOL_RESULT_SEPARATOR.join(results)))
                results = []
            elif tag in bot_tags and calls:
                if type(calls) is not list:
                    raise RowProblem(f"{column}[{index}].tool_calls", f"expected a list, got {kind(calls)}")
                turns.append(Message(Role.FUNCTION, tool_calls_text(calls, f"{column}[{index}].tool_calls")))
            else:
                turns.append(Message(role, content_text(message.get(content_tag), where, False)))
            origins.append(index)
        pair = None
        if pairwise:
            pair = (answer_of(row, attr.chosen or "", attr, roles), answer_of(row, attr.rejected or "", attr, roles))

        def field_of(position: int) -> str:
            return f"{column}[{origins[position]}]"

        return build_example(attr, context, row, ref, turns, field_of, system or None, pair)

    return convert


def _tag(message: Any, role_tag: str | None) -> Any:
    return message.get(role_tag) if type(message) is dict else None
