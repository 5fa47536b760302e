"""The slot-based chat template: formats turns in Python and writes the equivalent Jinja chat template.

Slots are plain strings with ``{content}`` where the text goes and ``{bos}`` / ``{eos}`` for the
template's special tokens. Families with behaviour that slots cannot express subclass ``Template``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from tunery.engine.data.types import Message, Role
from tunery.engine.templates.base import TemplateError, ToolCall
from tunery.engine.templates.conversation import check_conversation, parse_function_content, parse_tools
from tunery.engine.templates.tools import ToolFormat


def lit(text: str) -> str:
    """``text`` as a Jinja string literal."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Turn:
    """Where a message sits in the conversation being rendered."""

    index: int
    messages: list[Message]
    system: str
    tools: list[dict[str, Any]]
    enable_thinking: bool | None
    complete: bool

    @property
    def message(self) -> Message:
        return self.messages[self.index]

    @property
    def is_last(self) -> bool:
        return self.index == len(self.messages) - 1

    @property
    def last_user(self) -> int:
        """Index of the last user message (-1 when none)."""
        return max((i for i, m in enumerate(self.messages) if m.role == Role.USER), default=-1)


@dataclass(frozen=True)
class Template:
    """A chat format described by slots (see module doc). Special tokens are emitted as text."""

    name: str
    prefix: str = ""
    system: str = "{content}"
    user: str = "{content}"
    assistant_open: str = ""
    assistant: str = "{content}{eos}"
    observation: str | None = None  # None: written like a user turn
    function: str | None = None  # None: written like an assistant turn (content: the formatted calls)
    #: when set, the system text goes into the first user turn: "{system}" and "{content}" slots
    system_in_user: str | None = None
    #: with system_in_user and strip_content: strip the merged text (Llama 2), not the user text alone
    strip_merged: bool = False
    #: text after the last answer of a complete conversation (Phi-3 ends it with eos)
    suffix: str = ""
    default_system: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    stop_words: list[str] = field(default_factory=list)
    #: no end-of-turn token after answers; the trainer appends eos to the last answer (as LLaMA-Factory)
    efficient_eos: bool = False
    tool_format: ToolFormat = field(default_factory=ToolFormat)
    thought_words: tuple[str, str] | None = None
    #: strip whitespace around user/assistant/system texts (as e.g. Llama 3's ``| trim``)
    strip_content: bool = False
    #: bos/eos are taken from the tokenizer when the template is looked up (generic formats)
    tokenizer_tokens: bool = False
    #: the family writes tools its own way, so ``tool_format`` cannot switch it to another format
    fixed_tool_format: ClassVar[bool] = False

    # ----- public API -------------------------------------------------------------------------
    def render_turns(
        self,
        messages: list[Message],
        system: str | None = None,
        tools: str | None = None,
        *,
        enable_thinking: bool | None = True,
    ) -> list[tuple[str, str]]:
        pieces = self._pieces(messages, system, tools, enable_thinking, complete=True)
        return [(pieces[i], pieces[i + 1]) for i in range(0, len(pieces), 2)]

    def render_prompt(
        self,
        messages: list[Message],
        system: str | None = None,
        tools: str | None = None,
        *,
        enable_thinking: bool | None = True,
    ) -> str:
        return "".join(self._pieces(messages, system, tools, enable_thinking, complete=False))

    def parse_tool_calls(self, text: str) -> list[ToolCall] | str:
        return self.tool_format.parse(self._strip_stop_words(text))

    def with_tokens(self, bos_token: str | None, eos_token: str | None) -> Template:
        """A copy using the tokenizer's bos/eos (for generic templates)."""
        bos = bos_token or ""
        eos = eos_token or ""
        stops = [eos] if eos and not self.stop_words else self.stop_words
        return replace(self, bos_token=bos, eos_token=eos, stop_words=stops)

    # ----- rendering ------------------------------------------------------------------------------
    def _strip_stop_words(self, text: str) -> str:
        """The text before the first stop word (generation ends there)."""
        for word in [*self.stop_words, self.eos_token]:
            if word and word in text:
                text = text[: text.index(word)]
        return text

    def fill(self, slot: str, content: str = "") -> str:
        slot = slot.replace("{bos}", self.bos_token).replace("{eos}", self.eos_token)
        return slot.replace("{content}", content)

    def clean(self, text: str) -> str:
        return text.strip() if self.strip_content else text

    def system_text(self, system: str | None, tools: list[dict[str, Any]]) -> str:
        """The system content: the given or default system, with the tool definitions when any."""
        text = system if system else (self.default_system or "")
        if self.system_in_user is None:
            text = self.clean(text)
        return self.tool_format.system(text, tools) if tools else text

    def _pieces(
        self,
        messages: list[Message],
        system: str | None,
        tools: str | None,
        enable_thinking: bool | None,
        *,
        complete: bool,
    ) -> list[str]:
        check_conversation(messages, complete=complete)
        tool_list = parse_tools(tools)
        system_text = self.system_text(system, tool_list)
        pieces: list[str] = []
        for index in range(len(messages)):
            turn = Turn(index, messages, system_text, tool_list, enable_thinking, complete)
            if index % 2 == 0:
                text = self.format_query(turn) + self.format_open(turn)
                pieces.append(self.format_head(turn) + text if index == 0 else text)
            else:
                pieces.append(self.format_answer(turn))
        if complete and self.suffix:
            pieces[-1] += self.fill(self.suffix)
        return pieces

    def format_head(self, turn: Turn) -> str:
        """Text before the first turn: prefix and (unless merged into the first user turn) system."""
        head = self.fill(self.prefix)
        if turn.system and self.system_in_user is None:
            head += self.fill(self.system, turn.system)
        return head

    def format_query(self, turn: Turn) -> str:
        message = turn.message
        if message.role == Role.OBSERVATION:
            return self.fill(self.observation if self.observation is not None else self.user, message.content)
        if turn.index == 0 and turn.system and self.system_in_user is not None:
            before, after = self.system_in_user.split("{system}")
            middle, end = after.split("{content}")
            if self.strip_merged:
                content = self.clean(before + turn.system + middle + message.content + end)
            else:
                content = before + turn.system + middle + self.clean(message.content) + end
        else:
            content = self.clean(message.content)
        return self.fill(self.user, content)

    def format_open(self, turn: Turn) -> str:
        return self.fill(self.assistant_open)

    def format_answer(self, turn: Turn) -> str:
        message = turn.message
        if message.role == Role.FUNCTION:
            calls = self.tool_format.calls(parse_function_content(message.content))
            return self.fill(self.function if self.function is not None else self.assistant, calls)
        return self.fill(self.assistant, self.clean(message.content))

    # ----- Jinja ---------------------------------------------------------------------------------
    def _split(self, slot: str) -> tuple[str, str]:
        filled = slot.replace("{bos}", self.bos_token).replace("{eos}", self.eos_token)
        if filled.count("{content}") != 1:
            raise TemplateError(f"template {self.name!r}: slot {slot!r} needs exactly one {{content}}")
        before, after = filled.split("{content}")
        return before, after

    def _wrap(self, slot: str, expression: str) -> str:
        before, after = self._split(slot)
        return "{{- " + " + ".join(part for part in (lit(before), expression, lit(after)) if part != '""') + " -}}"

    def _content_expr(self, name: str = "message.content") -> str:
        return f"({name} | trim)" if self.strip_content else name

    def jinja_system(self) -> str:
        """Jinja setting ``system_message`` and ``loop_messages`` (with tools folded into the system)."""
        trim = " | trim" if self.strip_content and self.system_in_user is None else ""
        return (
            "{%- if messages and messages[0].role == 'system' -%}"
            f"{{%- set system_message = messages[0].content{trim} -%}}"
            "{%- set loop_messages = messages[1:] -%}"
            f"{{%- else -%}}{{%- set system_message = {lit(self.clean(self.default_system or ''))} -%}}"
            "{%- set loop_messages = messages -%}{%- endif -%}"
            "{%- if tools -%}{%- set system_message -%}" + self.tool_format.jinja_system() + "{%- endset -%}"
            "{%- endif -%}"
        )

    def jinja_query(self) -> str:
        """Jinja for a user or tool message (``message``) in ``loop_messages``."""
        user = self.jinja_user()
        observation = self._wrap(self.observation if self.observation is not None else self.user, "message.content")
        return (
            "{%- if message.role == 'user' -%}"
            + user
            + "{%- elif message.role == 'tool' -%}"
            + observation
            + "{%- endif -%}"
        )

    def jinja_user(self) -> str:
        content = self._content_expr()
        if self.system_in_user is None:
            return self._wrap(self.user, content)
        before, after = self.system_in_user.split("{system}")
        middle, end = after.split("{content}")
        merged = " + ".join([lit(before), "system_message", lit(middle), content, lit(end)])
        if self.strip_merged and self.strip_content:
            raw = " + ".join([lit(before), "system_message", lit(middle), "message.content", lit(end)])
            merged = f"({raw}) | trim"
        return (
            "{%- if loop.first and system_message -%}"
            + self._wrap(self.user, f"({merged})")
            + "{%- else -%}"
            + self._wrap(self.user, content)
            + "{%- endif -%}"
        )

    def jinja_answer(self) -> str:
        """Jinja for an assistant message, its opening marker included."""
        function = self.function if self.function is not None else self.assistant
        before, after = self._split(function)
        calls = "{{- " + lit(before) + " -}}" + self.tool_format.jinja_calls() + "{{- " + lit(after) + " -}}"
        return (
            "{{- " + lit(self.fill(self.assistant_open)) + " -}}"
            "{%- if message.tool_calls -%}"
            + calls
            + "{%- else -%}"
            + self._wrap(self.assistant, self._content_expr())
            + "{%- endif -%}"
        )

    def jinja_generation(self) -> str:
        text = "{%- if add_generation_prompt -%}{{- " + lit(self.fill(self.assistant_open)) + " -}}"
        if self.suffix:
            text += "{%- else -%}{{- " + lit(self.fill(self.suffix)) + " -}}"
        return text + "{%- endif -%}"

    def jinja_preamble(self) -> str:
        """Jinja run before the message loop (e.g. to find the last user query)."""
        return ""

    def to_jinja(self) -> str:
        """A Hugging Face ``chat_template`` rendering like this template (tool results: ``tool`` role)."""
        head = "{{- " + lit(self.fill(self.prefix)) + " -}}"
        if self.system_in_user is None:
            head += "{%- if system_message -%}" + self._wrap(self.system, "system_message") + "{%- endif -%}"
        return (
            self.jinja_system() + self.jinja_preamble() + head + "{%- for message in loop_messages -%}"
            "{%- if message.role == 'assistant' -%}"
            + self.jinja_answer()
            + "{%- else -%}"
            + self.jinja_query()
            + "{%- endif -%}"
            "{%- endfor -%}" + self.jinja_generation()
        )
