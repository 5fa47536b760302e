"""Tool formats: how tool definitions enter the system text, how calls are written and parsed back.

Each format has a Python side (used for training text) and a Jinja side (used in saved chat templates);
tests keep the two equal. Formats are registered by name (``register_tool_format``; the family modules add
theirs): ``tool_format`` of the spec switches a template to another one (``registry.get_template``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from tunery.engine.templates.base import ToolCall
from tunery.engine.templates.conversation import tool_functions

#: Jinja: `tool` in OpenAI form whatever the caller passed (bare schemas get wrapped).
JINJA_WRAP_TOOL = (
    "{%- if not (tool.type is defined and tool.type == 'function') -%}"
    "{%- set tool = {'type': 'function', 'function': tool} -%}{%- endif -%}"
)
#: Jinja: `call` is the function part of a tool call and `args` its arguments as JSON text.
JINJA_CALL_VARS = (
    "{%- set call = tool_call.function if tool_call.function is defined else tool_call -%}"
    "{%- set args = call.arguments if call.arguments is string else (call.arguments | tojson) -%}"
)


def _load_calls(value: Any) -> list[ToolCall] | None:
    items = value if isinstance(value, list) else [value]
    calls: list[ToolCall] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return None
        if not isinstance(arguments, dict):
            return None
        calls.append(ToolCall(item["name"], arguments))
    return calls or None


def parse_json_calls(text: str) -> list[ToolCall] | None:
    """Calls written as one JSON object or a JSON list of objects; None if ``text`` is not that."""
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    return _load_calls(value)


def args_json(call: ToolCall) -> str:
    return json.dumps(call.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class ToolFormat:
    """The default tool format (for families that define none): JSON tool list, Action lines."""

    name: str = "default"
    #: written only by the templates made for it (they place tools outside the system text)
    own_templates_only: ClassVar[bool] = False

    def system(self, system: str, tools: list[dict[str, Any]]) -> str:
        lines = "".join(json.dumps(function, ensure_ascii=False) + "\n" for function in tool_functions(tools))
        head = system + "\n\n" if system else ""
        return (
            f"{head}You have access to the following tools:\n{lines}\n"
            "To call a tool, answer with one block per call:\n"
            "Action: <tool name>\nAction Input: <arguments as a JSON object>"
        )

    def calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(f"Action: {call.name}\nAction Input: {args_json(call)}" for call in calls)

    def parse(self, text: str) -> list[ToolCall] | str:
        found = re.findall(r"Action:\s*(.+?)\s*\nAction Input:\s*(.+?)(?=\nAction:|\Z)", text, re.S)
        calls: list[ToolCall] = []
        for name, arguments in found:
            parsed = _load_calls({"name": name.strip(), "arguments": arguments.strip()})
            if parsed is None:
                return text
            calls.extend(parsed)
        return calls or text

    def jinja_system(self) -> str:
        """Jinja that outputs the system text from ``system_message`` and ``tools``."""
        return (
            "{%- if system_message -%}{{- system_message + '\\n\\n' -}}{%- endif -%}"
            "{{- 'You have access to the following tools:\\n' -}}"
            "{%- for tool in tools -%}" + JINJA_WRAP_TOOL + "{{- (tool.function | tojson) + '\\n' -}}"
            "{%- endfor -%}"
            "{{- '\\nTo call a tool, answer with one block per call:\\n"
            "Action: <tool name>\\nAction Input: <arguments as a JSON object>' -}}"
        )

    def jinja_calls(self) -> str:
        """Jinja that outputs ``message.tool_calls``."""
        return (
            "{%- for tool_call in message.tool_calls -%}" + JINJA_CALL_VARS + "{%- if not loop.first -%}"
            "{{- '\\n' -}}{%- endif -%}{{- 'Action: ' + call.name + '\\nAction Input: ' + args -}}"
            "{%- endfor -%}"
        )


QWEN_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
QWEN_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call>"
)


@dataclass(frozen=True)
class QwenTools(ToolFormat):
    """Qwen 2.5 / Qwen 3 (Hermes style): tools inside <tools>, calls inside <tool_call> tags."""

    name: str = "qwen"

    def system(self, system: str, tools: list[dict[str, Any]]) -> str:
        listed = "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
        head = system + "\n\n" if system else ""
        return head + QWEN_TOOLS_HEAD + listed + QWEN_TOOLS_TAIL

    def calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(
            f'<tool_call>\n{{"name": "{call.name}", "arguments": {args_json(call)}}}\n</tool_call>' for call in calls
        )

    def parse(self, text: str) -> list[ToolCall] | str:
        blocks = re.findall(r"<tool_call>(.*?)</tool_call>", text, re.S)
        calls: list[ToolCall] = []
        for block in blocks:
            parsed = parse_json_calls(block)
            if parsed is None:
                return text
            calls.extend(parsed)
        return calls or text

    def jinja_system(self) -> str:
        return (
            "{%- if system_message -%}{{- system_message + '\\n\\n' -}}{%- endif -%}"
            "{{- " + json.dumps(QWEN_TOOLS_HEAD) + " -}}"
            "{%- for tool in tools -%}" + JINJA_WRAP_TOOL + "{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
            "{{- " + json.dumps(QWEN_TOOLS_TAIL) + " -}}"
        )

    def jinja_calls(self) -> str:
        return (
            "{%- for tool_call in message.tool_calls -%}" + JINJA_CALL_VARS + "{%- if not loop.first -%}"
            "{{- '\\n' -}}{%- endif -%}"
            "{{- '<tool_call>\\n{\"name\": \"' + call.name + '\", \"arguments\": ' + args + '}\\n</tool_call>' -}}"
            "{%- endfor -%}"
        )


LLAMA3_TOOLS_HEAD = (
    "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
    "You have access to the following functions. To call a function, please respond with JSON for a "
    'function call.Respond in the format {"name": function name, "parameters": dictionary of argument '
    "name and its value}.Do not use variables.\n\n"
)


@dataclass(frozen=True)
class Llama3Tools(ToolFormat):
    """Llama 3.1 style, tools in the system message: indented JSON schemas, calls as
    ``{"name": ..., "parameters": ...}`` (several calls: a JSON list)."""

    name: str = "llama3"

    def system(self, system: str, tools: list[dict[str, Any]]) -> str:
        listed = "".join(json.dumps(tool, indent=4, ensure_ascii=False) + "\n\n" for tool in tools)
        return LLAMA3_TOOLS_HEAD + listed + system

    def calls(self, calls: list[ToolCall]) -> str:
        items = [f'{{"name": "{call.name}", "parameters": {args_json(call)}}}' for call in calls]
        return items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"

    def parse(self, text: str) -> list[ToolCall] | str:
        return parse_json_calls(text) or text

    def jinja_system(self) -> str:
        return (
            "{{- " + json.dumps(LLAMA3_TOOLS_HEAD) + " -}}"
            "{%- for tool in tools -%}" + JINJA_WRAP_TOOL + "{{- (tool | tojson(indent=4)) + '\\n\\n' -}}"
            "{%- endfor -%}{{- system_message -}}"
        )

    def jinja_calls(self) -> str:
        return (
            "{%- if message.tool_calls | length > 1 -%}{{- '[' -}}{%- endif -%}"
            "{%- for tool_call in message.tool_calls -%}" + JINJA_CALL_VARS + "{%- if not loop.first -%}"
            "{{- ', ' -}}{%- endif -%}"
            "{{- '{\"name\": \"' + call.name + '\", \"parameters\": ' + args + '}' -}}"
            "{%- endfor -%}{%- if message.tool_calls | length > 1 -%}{{- ']' -}}{%- endif -%}"
        )


_TOOL_FORMATS: dict[str, ToolFormat] = {}


def register_tool_format(tool_format: ToolFormat) -> ToolFormat:
    """Add a tool format under its name (once)."""
    if tool_format.name in _TOOL_FORMATS:
        raise ValueError(f"tool format {tool_format.name!r} is already registered")
    _TOOL_FORMATS[tool_format.name] = tool_format
    return tool_format


def registered_tool_formats() -> dict[str, ToolFormat]:
    """The formats registered so far (``registry.tool_format_names`` loads every family first)."""
    return dict(_TOOL_FORMATS)


for _format in (ToolFormat(), QwenTools(), Llama3Tools()):
    register_tool_format(_format)
