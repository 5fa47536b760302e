"""Qwen 3 (hybrid thinking) as its chat template does it.

Answers after the last user query show their reasoning in ``<think>`` tags (the final answer always,
with an empty block when it has none); earlier answers lose their reasoning. With
``enable_thinking=False`` the empty block of the final answer belongs to the prompt (as in the
template's generation prompt), so the model is not trained to write it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunery.engine.data.types import Role
from tunery.engine.templates.conversation import parse_function_content
from tunery.engine.templates.families.chatml import CHATML
from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template, Turn, lit
from tunery.engine.templates.tools import QwenTools

EMPTY_THOUGHT = "<think>\n\n</think>\n\n"


def split_reasoning(content: str) -> tuple[str, str]:
    """(reasoning, answer) the way Qwen 3's template splits an answer on </think>."""
    if "</think>" not in content:
        return "", content
    parts = content.split("</think>")
    reasoning = parts[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
    return reasoning, parts[-1].lstrip("\n")


@dataclass(frozen=True)
class Qwen3Template(Template):
    def _thinking_off(self, turn: Turn) -> bool:
        return turn.enable_thinking is False

    def format_open(self, turn: Turn) -> str:
        text = self.fill(self.assistant_open)
        if not self._thinking_off(turn):
            return text
        if not turn.complete and turn.is_last:
            return text + EMPTY_THOUGHT
        last = len(turn.messages) - 1
        if turn.complete and turn.index + 1 == last:
            reasoning, _ = split_reasoning(turn.messages[last].content)
            if not reasoning:
                return text + EMPTY_THOUGHT
        return text

    def format_answer(self, turn: Turn) -> str:
        message = turn.message
        if message.role == Role.FUNCTION:
            reasoning, content = "", ""
            calls = self.tool_format.calls(parse_function_content(message.content))
        else:
            reasoning, content = split_reasoning(message.content)
            calls = ""
        text = content
        if turn.index > turn.last_user and (turn.is_last or reasoning):
            thought = f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n"
            if turn.is_last and not reasoning and self._thinking_off(turn):
                thought = ""  # already in the prompt
            text = thought + content.lstrip("\n")
        if calls:
            text += ("\n" if content else "") + calls
        return text + "<|im_end|>\n"

    def jinja_preamble(self) -> str:
        return (
            "{%- set ns = namespace(last_query=-1) -%}{%- for m in loop_messages -%}"
            "{%- if m.role == 'user' -%}{%- set ns.last_query = loop.index0 -%}{%- endif -%}{%- endfor -%}"
        )

    def jinja_answer(self) -> str:
        return (
            "{%- set content = message.content if message.content is string else '' -%}"
            "{%- set reasoning = '' -%}"
            "{%- if message.reasoning_content is string -%}{%- set reasoning = message.reasoning_content -%}"
            "{%- elif '</think>' in content -%}"
            "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}"
            "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}{%- endif -%}"
            "{{- '<|im_start|>assistant\\n' -}}"
            "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) -%}"
            "{{- '<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') -}}"
            "{%- else -%}{{- content -}}{%- endif -%}"
            "{%- if message.tool_calls -%}{%- if content -%}{{- '\\n' -}}{%- endif -%}"
            + self.tool_format.jinja_calls()
            + "{%- endif -%}{{- '<|im_end|>\\n' -}}"
        )

    def jinja_generation(self) -> str:
        return (
            "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
            "{%- if enable_thinking is defined and enable_thinking is false -%}{{- "
            + lit(EMPTY_THOUGHT)
            + " -}}{%- endif -%}{%- endif -%}"
        )


register_template(
    Qwen3Template(
        name="qwen3",
        system=CHATML.system,
        user=CHATML.user,
        observation="<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n",
        assistant_open=CHATML.assistant_open,
        assistant=CHATML.assistant,
        eos_token="<|im_end|>",
        stop_words=["<|im_end|>"],
        tool_format=QwenTools(),
        thought_words=("<think>", "</think>"),
    )
)
