"""From OpenAI messages to the training template's prompt, and from generated tokens back to text: stop
strings, incremental decoding and tool calls (whole and streamed), on the tiny tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from tunery.engine.data.types import Message, Role
from tunery.engine.templates import ToolCall, get_template
from tunery.serving.decoding import Detokenizer, StopChecker, control_token_ids
from tunery.serving.prompting import TOOL_RESULT_SEPARATOR, render_chat, to_conversation
from tunery.serving.schemas import ChatCompletionRequest, ChatMessage
from tunery.serving.toolcalls import ToolStream, call_markers
from tunery.serving.types import RequestError

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def messages(*items: dict[str, Any]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(item) for item in items]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_llama)


def test_openai_roles_become_template_turns() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    turns, system = to_conversation(
        messages(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": [{"type": "text", "text": "Find "}, {"type": "text", "text": "x"}]},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "content": "r1", "tool_call_id": "c1"},
            {"role": "tool", "content": "r2", "tool_call_id": "c1"},
            {"role": "assistant", "content": "Found."},
            {"role": "user", "content": "Thanks"},
            {"role": "user", "content": "Bye"},
        )
    )
    assert system == "Be brief.\n\nUse tools."
    assert turns == [
        Message(Role.USER, "Find x"),
        Message(Role.FUNCTION, json.dumps({"name": "lookup", "arguments": {"q": "x"}})),
        Message(Role.OBSERVATION, f"r1{TOOL_RESULT_SEPARATOR}r2"),
        Message(Role.ASSISTANT, "Found."),
        Message(Role.USER, "Thanks\nBye"),
    ]


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        ([{"role": "assistant", "content": "hi"}], "last message must be from the user"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "only allowed before"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "only text parts"),
    ],
)
def test_conversations_the_template_cannot_take_are_refused(items: list[dict[str, Any]], needle: str) -> None:
    with pytest.raises(RequestError, match=needle):
        to_conversation(messages(*items))


def test_prompt_is_the_training_template_with_tools(tokenizer: Any) -> None:
    template = get_template("llama3", tokenizer)
    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
            "tools": [TOOL],
        }
    )
    prompt = render_chat(template, request)
    assert prompt.text == template.render_prompt([Message(Role.USER, "Q")], "S", json.dumps([TOOL]))
    assert '"name": "lookup"' in prompt.text and prompt.text.endswith(
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    none = render_chat(template, request.model_copy(update={"tool_choice": "none"}))
    assert "lookup" not in none.text
    named = {**request.model_dump(), "tool_choice": {"type": "function", "function": {"name": "other"}}}
    with pytest.raises(RequestError, match="not in tools"):
        render_chat(template, ChatCompletionRequest.model_validate(named))


def test_detokenizer_matches_whole_decoding(tokenizer: Any) -> None:
    text = 'Hello wörld — ünïcode 😀 tokens! {"a": 1}'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids("<|eot_id|>")]
    hidden = control_token_ids(tokenizer, ["<|eot_id|>"])
    detokenizer = Detokenizer(tokenizer, hidden)
    pieces = [detokenizer.add([token]) for token in ids]
    assert "".join(pieces) + detokenizer.flush() == text
    assert all("\ufffd" not in piece for piece in pieces)


def test_stop_strings_cut_and_hold_back() -> None:
    checker = StopChecker(("STOP", "\n\n"))
    emitted = []
    for delta in ["Hel", "lo S", "T", "OP and more"]:
        out, stopped = checker.feed(delta)
        emitted.append(out)
        if stopped:
            break
    assert emitted == ["Hel", "lo ", "", ""] and checker.text == "Hello " and checker.stopped
    passing = StopChecker(("STOP",))
    assert passing.feed("ST")[0] == "" and passing.feed("ay")[0] == "STay" and passing.finish() == ""
    held = StopChecker(("STOP",))
    held.feed("end ST")
    assert held.finish() == "ST" and held.text == "end ST"


@pytest.mark.parametrize("name", ["llama3", "qwen", "default"])
def test_streamed_tool_calls_are_held_back_and_parsed(tokenizer: Any, name: str) -> None:
    template = get_template(name, tokenizer)
    calls = [ToolCall("lookup", {"q": "x"})]
    text = template.tool_format.calls(calls)
    assert any(marker and marker in text for marker in call_markers(template))
    stream = ToolStream.for_template(template)
    emitted = "".join(stream.feed(text[i : i + 3]) for i in range(0, len(text), 3))
    rest, parsed = stream.finish()
    assert emitted == "" and rest == "" and parsed == calls

    plain = ToolStream.for_template(template)
    words = "The answer is 42, no tool needed."
    out = "".join(plain.feed(words[i : i + 4]) for i in range(0, len(words), 4))
    rest, parsed = plain.finish()
    assert parsed is None and out + rest == words and len(out) > len(words) // 2
