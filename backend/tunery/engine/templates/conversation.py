"""Conversation checks and conversions shared by every template (tools JSON, tool calls, HF messages)."""

from __future__ import annotations

import json
from typing import Any

from tunery.engine.data.types import Message, Role
from tunery.engine.templates.base import TemplateError, ToolCall

QUERY_ROLES = (Role.USER, Role.OBSERVATION)
ANSWER_ROLES = (Role.ASSISTANT, Role.FUNCTION)


def check_conversation(messages: list[Message], *, complete: bool) -> None:
    """Raise unless turns alternate query (user/observation) and answer (assistant/function_call).

    ``complete`` conversations end with an answer (training); others end with a query (generation).
    """
    if not messages:
        raise TemplateError("conversation is empty")
    for index, message in enumerate(messages):
        expected = QUERY_ROLES if index % 2 == 0 else ANSWER_ROLES
        if message.role not in expected:
            names = "/".join(role.value for role in expected)
            raise TemplateError(f"message {index}: role {message.role.value!r} where {names} was expected")
        if index and message.role == Role.OBSERVATION and messages[index - 1].role != Role.FUNCTION:
            raise TemplateError(f"message {index}: an observation must follow a function_call turn")
    if complete and len(messages) % 2:
        raise TemplateError("conversation must end with an assistant or function_call turn")
    if not complete and not len(messages) % 2:
        raise TemplateError("prompt must end with a user or observation turn")


def parse_tools(tools: str | None) -> list[dict[str, Any]]:
    """The tool list from its JSON string, each in OpenAI form ``{"type": "function", "function": {...}}``."""
    if tools is None or not tools.strip():
        return []
    try:
        value = json.loads(tools)
    except json.JSONDecodeError as err:
        raise TemplateError(f"tools: not valid JSON ({err.msg} at position {err.pos})") from err
    items = value if isinstance(value, list) else [value]
    result: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise TemplateError(f"tools[{index}]: expected a JSON object, got {type(item).__name__}")
        function = item.get("function") if item.get("type") == "function" else item
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise TemplateError(f"tools[{index}]: a tool needs a string 'name'")
        result.append(item if item.get("type") == "function" else {"type": "function", "function": item})
    return result


def tool_functions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bare function schemas (``name``, ``description``, ``parameters``) of normalised tools."""
    return [tool["function"] for tool in tools]


def _one_call(value: Any, where: str) -> ToolCall:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise TemplateError(f"{where}: a tool call needs a string 'name'")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as err:
            raise TemplateError(f"{where}: 'arguments' is a string that is not JSON ({err.msg})") from err
    if not isinstance(arguments, dict):
        raise TemplateError(f"{where}: 'arguments' must be a JSON object")
    return ToolCall(name=value["name"], arguments=arguments)


def parse_function_content(content: str) -> list[ToolCall]:
    """The call(s) in a function_call turn: JSON of one ``{"name", "arguments"}`` object or a list."""
    try:
        value = json.loads(content)
    except json.JSONDecodeError as err:
        raise TemplateError(f"function_call content is not valid JSON ({err.msg} at position {err.pos})") from err
    items = value if isinstance(value, list) else [value]
    if not items:
        raise TemplateError("function_call content holds no call")
    return [_one_call(item, f"function_call[{index}]") for index, item in enumerate(items)]


def tool_call_id(index: int) -> str:
    """A stable 9-character id for the ``index``-th tool call of a conversation (Mistral needs ids)."""
    return f"call{index:05d}"


def to_hf_messages(messages: list[Message], system: str | None = None) -> list[dict[str, Any]]:
    """Messages in Hugging Face / OpenAI chat form, for ``tokenizer.apply_chat_template``.

    function_call turns become assistant messages with ``tool_calls``; observations become ``tool``
    messages answering the preceding call (by id).
    """
    result: list[dict[str, Any]] = []
    if system:
        result.append({"role": "system", "content": system})
    calls_seen = 0
    last_call_id = tool_call_id(0)
    for message in messages:
        if message.role == Role.FUNCTION:
            tool_calls = []
            for position, call in enumerate(parse_function_content(message.content)):
                call_id = tool_call_id(calls_seen)
                if position == 0:
                    last_call_id = call_id
                calls_seen += 1
                function = {"name": call.name, "arguments": call.arguments}
                tool_calls.append({"id": call_id, "type": "function", "function": function})
            result.append({"role": "assistant", "content": "", "tool_calls": tool_calls})
        elif message.role == Role.OBSERVATION:
            result.append({"role": "tool", "content": message.content, "tool_call_id": last_call_id})
        else:
            result.append({"role": message.role.value, "content": message.content})
    return result
