"""The ``auto`` template: the tokenizer's own Jinja chat template, split into turns by rendering prefixes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunery.engine.data.types import Message
from tunery.engine.templates.base import TemplateError, ToolCall
from tunery.engine.templates.conversation import check_conversation, parse_tools, to_hf_messages
from tunery.engine.templates.tools import QwenTools, parse_json_calls


@dataclass(frozen=True)
class TokenizerTemplate:
    """Renders with ``tokenizer.apply_chat_template``.

    The prompt of turn i is the rendering of turns < 2i+1 with the generation prompt minus the rendering
    of turns < 2i; the response is the rendering of turns < 2i+2 minus that prompt rendering. A chat
    template whose renderings are not prefixes of each other (e.g. one that drops past reasoning) is
    refused with a clear error: use a named template then.
    """

    tokenizer: Any
    chat_template: str
    name: str = "auto"
    default_system: str | None = None
    stop_words: list[str] = field(default_factory=list)
    efficient_eos: bool = False
    thought_words: tuple[str, str] | None = None

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenizerTemplate:
        chat_template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
        if not isinstance(chat_template, str) or not chat_template.strip():
            raise TemplateError(
                "template 'auto' needs a tokenizer with a chat_template; this tokenizer has none. "
                "Name a template instead (e.g. data.template: llama3)."
            )
        eos = getattr(tokenizer, "eos_token", None)
        return cls(tokenizer=tokenizer, chat_template=chat_template, stop_words=[eos] if eos else [])

    def _render(
        self, hf_messages: list[dict[str, Any]], tools: list[dict[str, Any]], thinking: bool | None, gen: bool
    ) -> str:
        kwargs: dict[str, Any] = {} if thinking is None else {"enable_thinking": thinking}
        try:
            text = self.tokenizer.apply_chat_template(
                hf_messages,
                tools=tools or None,
                chat_template=self.chat_template,
                add_generation_prompt=gen,
                tokenize=False,
                **kwargs,
            )
        except Exception as err:  # jinja raises its own errors; name the template
            raise TemplateError(f"the tokenizer's chat template failed: {err}") from err
        if not isinstance(text, str):
            raise TemplateError("the tokenizer's chat template did not return text")
        return text

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
        hf = to_hf_messages(messages, system or self.default_system)
        offset = len(hf) - len(messages)  # 1 when a system message leads
        pieces: list[str] = []
        done = ""
        for index in range(len(messages)):
            query = index % 2 == 0
            rendered = self._render(hf[: offset + index + 1], tool_list, enable_thinking, query)
            if not rendered.startswith(done):
                raise TemplateError(
                    f"the tokenizer's chat template renders message {index} differently once later turns "
                    "follow (it rewrites earlier text), so turns cannot be split; name a template instead"
                )
            pieces.append(rendered[len(done) :])
            done = rendered
        return pieces

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
        check_conversation(messages, complete=False)
        hf = to_hf_messages(messages, system or self.default_system)
        return self._render(hf, parse_tools(tools), enable_thinking, True)

    def parse_tool_calls(self, text: str) -> list[ToolCall] | str:
        """Hermes-style <tool_call> blocks or bare JSON calls; otherwise the text."""
        found = QwenTools().parse(text)
        if not isinstance(found, str):
            return found
        return parse_json_calls(text) or text

    def to_jinja(self) -> str:
        return self.chat_template
