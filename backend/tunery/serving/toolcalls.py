"""Tool calls in generated text: parsed by the chat template, and held back from a stream once they start.

Where a call starts is learnt from the template itself: the text it writes for a probe call, up to the
function name (``<tool_call>\\n{"name": "`` for Qwen, ``{"name": "`` for Llama 3, ``Action: `` by default).
Text before that marker streams as content; from the marker on, the text is kept and parsed at the end.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from tunery.engine.templates import ChatTemplate, ToolCall
from tunery.serving.decoding import partial_suffix

PROBE = "tunery_probe_function"


def call_markers(template: ChatTemplate) -> tuple[str, ...]:
    """Texts a tool call starts with in this template ('' when unknown: then everything is held back)."""
    tool_format = getattr(template, "tool_format", None)
    if tool_format is None:
        return ("",)
    markers: set[str] = set()
    for count in (1, 2):
        text = tool_format.calls([ToolCall(PROBE, {})] * count)
        if PROBE in text:
            head = text[: text.index(PROBE)].lstrip()
            markers.add(head[: max(1, len(head.rstrip(' "')))] if head else "")
    return tuple(sorted(markers)) if markers and "" not in markers else ("",)


def openai_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{secrets.token_hex(12)}",
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        }
        for call in calls
    ]


def parse_calls(template: ChatTemplate, text: str) -> list[ToolCall] | None:
    parsed = template.parse_tool_calls(text)
    return parsed if isinstance(parsed, list) and parsed else None


@dataclass
class ToolStream:
    """Streams content until a tool call may have started; ``finish`` parses the whole text."""

    template: ChatTemplate
    markers: tuple[str, ...]
    text: str = ""
    emitted: int = 0  # characters of ``text`` already sent as content
    capturing: bool = False
    calls: list[ToolCall] | None = field(default=None)

    @classmethod
    def for_template(cls, template: ChatTemplate) -> ToolStream:
        return cls(template, call_markers(template))

    def feed(self, delta: str) -> str:
        self.text += delta
        if self.capturing:
            return ""
        pending = self.text[self.emitted :]
        lead = len(pending) - len(pending.lstrip()) if self.emitted == 0 else 0
        body = pending[lead:]
        if "" in self.markers:  # unknown format: keep everything until the end
            self.capturing = True
            return ""
        found = [body.find(marker) for marker in self.markers]
        starts = [index for index in found if index >= 0]
        if starts:
            out = pending[: lead + min(starts)] if self.emitted or min(starts) else ""
            self.emitted += len(out)
            self.capturing = True
            return out
        keep = max(partial_suffix(body, marker) for marker in self.markers)
        if self.emitted == 0 and keep == len(body):  # only whitespace, or the start of a call, so far
            return ""
        size = len(pending) - keep
        out = pending[:size]
        self.emitted += len(out)
        return out

    def finish(self) -> tuple[str, list[ToolCall] | None]:
        """(content not yet sent, tool calls or None)."""
        self.calls = parse_calls(self.template, self.text)
        if self.calls:
            return "", self.calls
        rest = self.text[self.emitted :]
        self.emitted = len(self.text)
        return rest, None
