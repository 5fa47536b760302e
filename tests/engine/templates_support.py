"""Shared data for the chat-template tests: conversations, reference Jinja files, reference rendering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunery.engine.data.types import Message, Role
from tunery.engine.templates import parse_tools, to_hf_messages

REFS = Path(__file__).parent / "template_refs"

SYSTEM = "You are a careful assistant."

#: Multi-turn chat; the second answer keeps a trailing space to catch trimming differences.
CHAT = [
    Message(Role.USER, "Hello, who are you?"),
    Message(Role.ASSISTANT, "I am a helpful assistant."),
    Message(Role.USER, "What is 2 + 2?\nAnswer briefly."),
    Message(Role.ASSISTANT, "2 + 2 = 4."),
    Message(Role.USER, "Thanks! 谢谢"),
    Message(Role.ASSISTANT, "You're welcome."),
]

TOOLS = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                },
            },
        },
    ]
)

#: Chat, tool call, tool result, answer, then a second question and a direct answer.
TOOL_CHAT = [
    Message(Role.USER, "What's the weather in Paris?"),
    Message(
        Role.FUNCTION,
        json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}}),
    ),
    Message(Role.OBSERVATION, json.dumps({"temperature": 21, "sky": "sunny"})),
    Message(Role.ASSISTANT, "It is 21 degrees and sunny in Paris."),
    Message(Role.USER, "And 2 + 3?"),
    Message(Role.FUNCTION, json.dumps({"name": "add", "arguments": {"a": 2, "b": 3}})),
    Message(Role.OBSERVATION, "5"),
    Message(Role.ASSISTANT, "2 + 3 = 5."),
]

#: One answer with two parallel calls (LLaMA-Factory writes them as a JSON list).
PARALLEL_CALLS = [
    Message(Role.USER, "Weather in Paris and Rome?"),
    Message(
        Role.FUNCTION,
        json.dumps(
            [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Rome"}},
            ]
        ),
    ),
]


def ref_jinja(name: str) -> str:
    return (REFS / f"{name}.jinja").read_text(encoding="utf-8")


def reference(
    tokenizer: Any,
    chat_template: str,
    messages: list[Message],
    system: str | None = None,
    tools: str | None = None,
    *,
    generation: bool = False,
    json_tool_results: bool = False,
    **kwargs: Any,
) -> str:
    """``tokenizer.apply_chat_template`` of our conversation in Hugging Face form.

    ``json_tool_results`` passes tool results as parsed JSON (templates that ``tojson`` them).
    """
    hf = to_hf_messages(messages, system)
    if json_tool_results:
        for message in hf:
            if message["role"] == "tool":
                message["content"] = json.loads(message["content"])
    text = tokenizer.apply_chat_template(
        hf,
        tools=parse_tools(tools) or None,
        chat_template=chat_template,
        add_generation_prompt=generation,
        tokenize=False,
        **kwargs,
    )
    assert isinstance(text, str)
    return text


def joined(pairs: list[tuple[str, str]]) -> str:
    return "".join(prompt + response for prompt, response in pairs)
