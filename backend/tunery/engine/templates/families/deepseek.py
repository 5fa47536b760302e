"""DeepSeek formats: deepseek3 (V3 chat) and deepseekr1 (R1 reasoning).

R1's chat template removes the reasoning of every answer and opens the generation prompt with
``<think>\\n``. We do the same for history and for prompts; the final answer of a training
conversation keeps its reasoning after that ``<think>\\n`` (an empty one when it has none). With
``enable_thinking=False`` the prompt ends with an empty thought instead and the answer is trained
without reasoning. Tools: neither chat template renders tool definitions, so the default tool
format is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunery.engine.data.types import Role
from tunery.engine.templates.registry import register_template
from tunery.engine.templates.template import Template, Turn, lit

DEEPSEEK3 = Template(
    name="deepseek3",
    prefix="{bos}",
    user="<｜User｜>{content}",
    assistant_open="<｜Assistant｜>",
    assistant="{content}{eos}",
    bos_token="<｜begin▁of▁sentence｜>",
    eos_token="<｜end▁of▁sentence｜>",
    stop_words=["<｜end▁of▁sentence｜>"],
)
register_template(DEEPSEEK3)

THINK_OPEN = "<think>\n"
THINK_SKIPPED = "<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class DeepSeekR1Template(Template):
    def _before_final(self, turn: Turn) -> bool:
        """True for the query right before the answer being trained or generated."""
        if not turn.complete:
            return turn.is_last
        return turn.index + 1 == len(turn.messages) - 1 and turn.messages[-1].role == Role.ASSISTANT

    def format_open(self, turn: Turn) -> str:
        text = self.fill(self.assistant_open)
        if self._before_final(turn):
            text += THINK_SKIPPED if turn.enable_thinking is False else THINK_OPEN
        return text

    def format_answer(self, turn: Turn) -> str:
        message = turn.message
        if message.role == Role.FUNCTION:
            return super().format_answer(turn)
        content = message.content
        if not turn.is_last:
            return self.fill(self.assistant, content.split("</think>")[-1])
        reasoning, answer = "", content
        if "</think>" in content:
            before, answer = content.split("</think>")[0], content.split("</think>")[-1]
            reasoning = before.split("<think>")[-1].strip("\n")
        answer = answer.lstrip("\n")
        if turn.enable_thinking is False:
            return self.fill(self.assistant, answer)
        return self.fill(self.assistant, f"{reasoning}\n</think>\n\n{answer}")

    def jinja_answer(self) -> str:
        calls = self.tool_format.jinja_calls()
        off = "enable_thinking is defined and enable_thinking is false"
        return (
            "{%- set content = message.content if message.content is string else '' -%}"
            "{{- '<｜Assistant｜>' -}}"
            "{%- if message.tool_calls -%}" + calls + "{{- " + lit(self.eos_token) + " -}}"
            "{%- elif not loop.last -%}{{- content.split('</think>')[-1] + " + lit(self.eos_token) + " -}}"
            "{%- else -%}"
            "{%- set answer = content.split('</think>')[-1].lstrip('\\n') -%}"
            "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\\n') "
            "if '</think>' in content else '' -%}"
            f"{{%- if {off} -%}}{{{{- {lit(THINK_SKIPPED)} + answer -}}}}"
            "{%- else -%}{{- '<think>\\n' + reasoning + '\\n</think>\\n\\n' + answer -}}{%- endif -%}"
            "{{- " + lit(self.eos_token) + " -}}{%- endif -%}"
        )

    def jinja_generation(self) -> str:
        off = "enable_thinking is defined and enable_thinking is false"
        return (
            "{%- if add_generation_prompt -%}{{- '<｜Assistant｜>' -}}"
            f"{{%- if {off} -%}}{{{{- {lit(THINK_SKIPPED)} -}}}}{{%- else -%}}{{{{- '<think>\\n' -}}}}{{%- endif -%}}"
            "{%- endif -%}"
        )


register_template(
    DeepSeekR1Template(
        name="deepseekr1",
        prefix=DEEPSEEK3.prefix,
        user=DEEPSEEK3.user,
        assistant_open=DEEPSEEK3.assistant_open,
        assistant=DEEPSEEK3.assistant,
        bos_token=DEEPSEEK3.bos_token,
        eos_token=DEEPSEEK3.eos_token,
        stop_words=DEEPSEEK3.stop_words,
        thought_words=("<think>", "</think>"),
    )
)
