"""GLM-4 (glm-4-9b-chat): role markers without end tokens; answers stop at the next marker.

Rendered by transformers (trim_blocks), its template writes one newline before each tool's "## name"
(GLM's own Python writes two); we follow the Jinja rendering, which is what serving uses.

Tools go into their own system block; a tool call is written as ``name\\n{arguments}`` right after
``<|assistant|>`` (parallel calls: one assistant block each); results follow ``<|observation|>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tunery.engine.templates.base import ToolCall
from tunery.engine.templates.conversation import tool_functions
from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template
from tunery.engine.templates.tools import (
    JINJA_CALL_VARS,
    JINJA_WRAP_TOOL,
    ToolFormat,
    args_json,
    register_tool_format,
)

GLM4_TOOLS_HEAD = (
    "你是一个名为 GLM-4 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，"
    "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具"
)
GLM4_TOOL_TAIL = "\n在调用上述函数时，请使用 Json 格式表示调用的参数。"


@dataclass(frozen=True)
class GLM4Tools(ToolFormat):
    name: str = "glm4"

    def system(self, system: str, tools: list[dict[str, Any]]) -> str:
        text = GLM4_TOOLS_HEAD + "".join(
            f"\n## {function['name']}\n\n{json.dumps(function, indent=4, ensure_ascii=False)}{GLM4_TOOL_TAIL}"
            for function in tool_functions(tools)
        )
        return text + ("<|system|>\n" + system if system else "")

    def calls(self, calls: list[ToolCall]) -> str:
        return "<|assistant|>".join(f"{call.name}\n{args_json(call)}" for call in calls)

    def parse(self, text: str) -> list[ToolCall] | str:
        calls: list[ToolCall] = []
        for block in text.split("<|assistant|>"):
            name, _, arguments = block.strip().partition("\n")
            try:
                parsed = json.loads(arguments)
            except json.JSONDecodeError:
                return text
            if not name or " " in name or not isinstance(parsed, dict):
                return text
            calls.append(ToolCall(name, parsed))
        return calls or text

    def jinja_system(self) -> str:
        return (
            "{{- " + json.dumps(GLM4_TOOLS_HEAD, ensure_ascii=False) + " -}}"
            "{%- for tool in tools -%}"
            + JINJA_WRAP_TOOL
            + "{{- '\\n## ' + tool.function.name + '\\n\\n' + (tool.function | tojson(indent=4)) + "
            + json.dumps(GLM4_TOOL_TAIL, ensure_ascii=False)
            + " -}}{%- endfor -%}"
            "{%- if system_message -%}{{- '<|system|>\\n' + system_message -}}{%- endif -%}"
        )

    def jinja_calls(self) -> str:
        return (
            "{%- for tool_call in message.tool_calls -%}" + JINJA_CALL_VARS + "{%- if not loop.first -%}"
            "{{- '<|assistant|>' -}}{%- endif -%}{{- call.name + '\\n' + args -}}{%- endfor -%}"
        )


register_tool_format(GLM4Tools())
register_template(
    Template(
        name="glm4",
        prefix="[gMASK]<sop>",
        system="<|system|>\n{content}",
        user="<|user|>\n{content}",
        observation="<|observation|>\n{content}",
        assistant_open="<|assistant|>",
        assistant="\n{content}",
        function="{content}",
        eos_token="<|endoftext|>",
        stop_words=["<|user|>", "<|observation|>"],
        efficient_eos=True,
        tool_format=GLM4Tools(),
    )
)
