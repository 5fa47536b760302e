"""Mistral v3 (Mistral-7B-Instruct-v0.3, Mistral-Large-2407): tools and system next to the last question.

As in its chat template: ``[AVAILABLE_TOOLS]`` and the system text go into the last user turn, tool
calls carry 9-character ids (``call00000``, numbered through the conversation) that tool results
repeat. The chat template writes the system text only while the conversation ends with that user
turn (it drops it once an answer or a tool result follows); we always keep it in the last user turn,
where the model sees it when answering the user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from tunery.engine.data.types import Role
from tunery.engine.templates.base import ToolCall
from tunery.engine.templates.conversation import parse_function_content, tool_call_id, tool_functions
from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template, Turn, lit
from tunery.engine.templates.tools import ToolFormat, parse_json_calls, register_tool_format


def _tool_entry(function: dict[str, Any]) -> str:
    # string values are written unescaped, as the Mistral template does
    parts = [
        f'"{key}": "{value}"' if isinstance(value, str) else f'"{key}": {json.dumps(value, ensure_ascii=False)}'
        for key, value in function.items()
        if key != "return"
    ]
    return '{"type": "function", "function": {' + ", ".join(parts) + "}}"


@dataclass(frozen=True)
class MistralTools(ToolFormat):
    name: str = "mistral"
    own_templates_only: ClassVar[bool] = True  # tools go next to the last user turn (MistralTemplate)

    def system(self, system: str, tools: list[dict[str, Any]]) -> str:
        return system  # tools go next to the last user turn, not into the system text

    def available(self, tools: list[dict[str, Any]]) -> str:
        return "[AVAILABLE_TOOLS] [" + ", ".join(_tool_entry(f) for f in tool_functions(tools)) + "][/AVAILABLE_TOOLS]"

    def calls_with_ids(self, calls: list[ToolCall], first_id: int) -> str:
        items = [
            json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)[:-1]
            + f', "id": "{tool_call_id(first_id + position)}"}}'
            for position, call in enumerate(calls)
        ]
        return "[TOOL_CALLS] [" + ", ".join(items) + "]"

    def calls(self, calls: list[ToolCall]) -> str:
        return self.calls_with_ids(calls, 0)

    def parse(self, text: str) -> list[ToolCall] | str:
        match = re.search(r"\[TOOL_CALLS\]\s*(\[.*\])", text, re.S)
        if match is None:
            return text
        return parse_json_calls(match.group(1)) or text


def _calls_before(turn: Turn) -> int:
    return sum(len(parse_function_content(m.content)) for m in turn.messages[: turn.index] if m.role == Role.FUNCTION)


@dataclass(frozen=True)
class MistralTemplate(Template):
    tool_format: ToolFormat = MistralTools()
    fixed_tool_format: ClassVar[bool] = True  # its turns and Jinja write Mistral's tool blocks only

    def format_head(self, turn: Turn) -> str:
        return self.fill(self.prefix)

    def format_query(self, turn: Turn) -> str:
        message = turn.message
        if message.role == Role.OBSERVATION:
            call_id = tool_call_id(_calls_before(replace(turn, index=turn.index - 1)))
            return f'[TOOL_RESULTS] {{"content": {message.content}, "call_id": "{call_id}"}}[/TOOL_RESULTS]'
        text = ""
        last_user = turn.index == turn.last_user
        if turn.tools and last_user and isinstance(self.tool_format, MistralTools):
            text += self.tool_format.available(turn.tools)
        if turn.system and last_user:
            return text + f"[INST] {turn.system}\n\n{message.content}[/INST]"
        return text + f"[INST] {message.content}[/INST]"

    def format_answer(self, turn: Turn) -> str:
        message = turn.message
        if message.role == Role.FUNCTION and isinstance(self.tool_format, MistralTools):
            calls = parse_function_content(message.content)
            return self.tool_format.calls_with_ids(calls, _calls_before(turn)) + self.eos_token
        return f" {message.content.strip()}{self.eos_token}"

    def to_jinja(self) -> str:
        eos = lit(self.eos_token)
        return (
            "{%- if messages and messages[0].role == 'system' -%}{%- set system_message = messages[0].content -%}"
            "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set system_message = '' -%}"
            "{%- set loop_messages = messages -%}{%- endif -%}"
            "{%- set ns = namespace(last_user=-1) -%}{%- for m in loop_messages -%}"
            "{%- if m.role == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}"
            "{{- " + lit(self.bos_token) + " -}}"
            "{%- for message in loop_messages -%}"
            "{%- if message.role == 'user' -%}"
            "{%- if tools and loop.index0 == ns.last_user -%}{{- '[AVAILABLE_TOOLS] [' -}}"
            "{%- for tool in tools -%}{%- set f = tool.function if tool.function is defined else tool -%}"
            '{{- \'{"type": "function", "function": {\' -}}'
            "{%- for key, val in f.items() if key != 'return' -%}"
            "{%- if val is string -%}{{- '\"' + key + '\": \"' + val + '\"' -}}"
            "{%- else -%}{{- '\"' + key + '\": ' + (val | tojson) -}}{%- endif -%}"
            "{%- if not loop.last -%}{{- ', ' -}}{%- endif -%}{%- endfor -%}{{- '}}' -}}"
            "{%- if not loop.last -%}{{- ', ' -}}{%- endif -%}{%- endfor -%}"
            "{{- '][/AVAILABLE_TOOLS]' -}}{%- endif -%}"
            "{%- if system_message and loop.index0 == ns.last_user -%}"
            "{{- '[INST] ' + system_message + '\\n\\n' + message.content + '[/INST]' -}}"
            "{%- else -%}{{- '[INST] ' + message.content + '[/INST]' -}}{%- endif -%}"
            "{%- elif message.role == 'assistant' and message.tool_calls -%}{{- '[TOOL_CALLS] [' -}}"
            "{%- for tool_call in message.tool_calls -%}"
            "{%- set call = tool_call.function if tool_call.function is defined else tool_call -%}"
            "{{- ({'name': call.name, 'arguments': call.arguments} | tojson)[:-1] + ', \"id\": \"' "
            "+ tool_call.id + '\"}' -}}{%- if not loop.last -%}{{- ', ' -}}{%- endif -%}{%- endfor -%}"
            "{{- ']' + " + eos + " -}}"
            "{%- elif message.role == 'assistant' -%}{{- ' ' + (message.content | trim) + " + eos + " -}}"
            "{%- elif message.role == 'tool' -%}"
            '{{- \'[TOOL_RESULTS] {"content": \' + (message.content | string) + \', "call_id": "\' '
            "+ message.tool_call_id + '\"}[/TOOL_RESULTS]' -}}"
            "{%- endif -%}{%- endfor -%}"
        )


register_tool_format(MistralTools())
register_template(
    MistralTemplate(
        name="mistral",
        prefix="{bos}",
        bos_token="<s>",
        eos_token="</s>",
        stop_words=["</s>"],
    )
)
