"""Template contract: what the rest of the engine uses from a chat template, plus shared small types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tunery.engine.data.types import Message


class TemplateError(ValueError):
    """A conversation, tool list or template name that a chat template cannot handle."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call: the function name and its arguments (a JSON object)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


class ChatTemplate(Protocol):
    """What the rest of the engine uses from a chat template."""

    @property
    def name(self) -> str: ...

    @property
    def stop_words(self) -> list[str]:
        """Texts that end a generated answer (the end-of-turn token first)."""
        ...

    @property
    def default_system(self) -> str | None: ...

    @property
    def efficient_eos(self) -> bool:
        """True when answers carry no end token: append eos after the last answer when training."""
        ...

    @property
    def thought_words(self) -> tuple[str, str] | None:
        """Opening and closing reasoning markers (e.g. <think>, </think>) or None."""
        ...

    def render_turns(
        self,
        messages: list[Message],
        system: str | None = None,
        tools: str | None = None,
        *,
        enable_thinking: bool | None = True,
    ) -> list[tuple[str, str]]:
        """Text of each (prompt, response) pair; all pieces joined equal the whole rendered conversation.

        ``messages`` alternate user/observation and assistant/function_call turns and end with an
        assistant or function_call turn. Special tokens (bos, eos, markers) appear as text.
        """
        ...

    def render_prompt(
        self,
        messages: list[Message],
        system: str | None = None,
        tools: str | None = None,
        *,
        enable_thinking: bool | None = True,
    ) -> str:
        """Text to generate from: the conversation (ending with a user/observation turn) plus the
        assistant's opening marker."""
        ...

    def parse_tool_calls(self, text: str) -> list[ToolCall] | str:
        """The tool calls in a generated ``text``, or the text itself when it holds none."""
        ...

    def to_jinja(self) -> str:
        """A Hugging Face ``chat_template`` that renders like this template."""
        ...
