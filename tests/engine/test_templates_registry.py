"""Template registry: lookup errors, the tokenizer's own template ('auto'), tool-call parsing, tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engine.templates_support import (
    CHAT,
    PARALLEL_CALLS,
    SYSTEM,
    TOOL_CHAT,
    TOOLS,
    joined,
    ref_jinja,
)
from tests.support.tiny_models import build_tokenizer
from tunery.engine.data.types import Message, Role
from tunery.engine.templates import (
    Template,
    TemplateError,
    ToolCall,
    get_template,
    list_templates,
    parse_function_content,
    register_template,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tokenizer(Path(tmp_path_factory.mktemp("tok")), "llama")


def test_unknown_name_lists_close_matches(tokenizer: Any) -> None:
    with pytest.raises(
        TemplateError, match=r"unknown chat template 'qwen25'.*did you mean.*qwen"
    ):
        get_template("qwen25", tokenizer)


def test_auto_without_tokenizer_template_is_a_clear_error(tokenizer: Any) -> None:
    tokenizer.chat_template = None
    with pytest.raises(TemplateError, match="has none"):
        get_template("auto", tokenizer)
    with pytest.raises(TemplateError, match="has none"):
        get_template(None, tokenizer)


@pytest.mark.parametrize(("ref", "named"), [("qwen2_5", "qwen"), ("llama3", "llama3")])
def test_auto_splits_the_tokenizer_template_into_turns(
    tokenizer: Any, ref: str, named: str
) -> None:
    tokenizer.chat_template = ref_jinja(ref)
    try:
        auto = get_template("auto", tokenizer)
        same = get_template(named, tokenizer)
        for system in (None, SYSTEM):
            assert auto.render_turns(CHAT, system) == same.render_turns(CHAT, system)
            assert auto.render_prompt(CHAT[:3], system) == same.render_prompt(
                CHAT[:3], system
            )
        if named == "qwen":
            assert auto.render_turns(TOOL_CHAT, SYSTEM, TOOLS) == same.render_turns(
                TOOL_CHAT, SYSTEM, TOOLS
            )
    finally:
        tokenizer.chat_template = None


def test_auto_refuses_a_template_that_rewrites_history(tokenizer: Any) -> None:
    # Qwen 3 gives the last answer an empty thought block and drops it once a later turn follows.
    tokenizer.chat_template = ref_jinja("qwen3")
    try:
        with pytest.raises(TemplateError, match="cannot be split"):
            get_template("auto", tokenizer).render_turns(CHAT)
        prompt = get_template("auto", tokenizer).render_prompt(
            CHAT[:3], enable_thinking=False
        )
        assert prompt == get_template("qwen3", tokenizer).render_prompt(
            CHAT[:3], enable_thinking=False
        )
    finally:
        tokenizer.chat_template = None


@pytest.mark.parametrize(
    "name", ["qwen", "qwen3", "llama3", "mistral", "glm4", "chatml", "default", "gemma"]
)
def test_tool_calls_round_trip(tokenizer: Any, name: str) -> None:
    template = get_template(name, tokenizer)
    for messages in (TOOL_CHAT[:2], PARALLEL_CALLS):
        calls = parse_function_content(messages[1].content)
        response = template.render_turns(messages, None, TOOLS)[-1][1]
        assert template.parse_tool_calls(response) == calls
    assert template.parse_tool_calls("Just text, no call.") == "Just text, no call."


def test_function_content_accepts_string_arguments_and_rejects_bad_json() -> None:
    calls = parse_function_content(
        json.dumps({"name": "f", "arguments": json.dumps({"x": 1})})
    )
    assert calls == [ToolCall("f", {"x": 1})]
    with pytest.raises(TemplateError, match="not valid JSON"):
        parse_function_content("{name: f}")
    with pytest.raises(TemplateError, match="needs a string 'name'"):
        parse_function_content(json.dumps({"arguments": {}}))


def test_bad_conversations_and_tools_are_named(tokenizer: Any) -> None:
    template = get_template("qwen", tokenizer)
    with pytest.raises(TemplateError, match="message 1: role 'user'"):
        template.render_turns([Message(Role.USER, "a"), Message(Role.USER, "b")])
    with pytest.raises(TemplateError, match="must end with an assistant"):
        template.render_turns(CHAT[:3])
    with pytest.raises(TemplateError, match="prompt must end with a user"):
        template.render_prompt(CHAT[:2])
    with pytest.raises(TemplateError, match=r"tools: not valid JSON"):
        template.render_turns(CHAT, None, "[{")
    with pytest.raises(
        TemplateError, match=r"tools\[0\]: a tool needs a string 'name'"
    ):
        template.render_turns(CHAT, None, json.dumps([{"description": "x"}]))


def test_register_template_adds_a_family_once(tokenizer: Any) -> None:
    names = list_templates()
    assert {"chatml", "qwen", "llama3", "empty", "default"} <= set(names)
    register_template(
        Template(
            name="test-echo",
            user="Q: {content}\n",
            assistant_open="A: ",
            tokenizer_tokens=True,
        )
    )
    template = get_template("test-echo", tokenizer)
    assert (
        joined(template.render_turns(CHAT[:2]))
        == f"Q: {CHAT[0].content}\nA: {CHAT[1].content}<|eot_id|>"
    )
    with pytest.raises(TemplateError, match="already registered"):
        register_template(Template(name="test-echo"))


def test_generic_templates_take_tokenizer_tokens(tokenizer: Any) -> None:
    template = get_template("alpaca", tokenizer)
    assert template.stop_words == ["<|eot_id|>"]
    assert joined(template.render_turns(CHAT[:2])).endswith(
        "I am a helpful assistant.<|eot_id|>\n\n"
    )


@pytest.mark.parametrize(
    "name", ["qwen", "qwen3", "llama3", "mistral", "glm4", "deepseekr1"]
)
def test_turn_pieces_tokenize_like_the_whole_text(tokenizer: Any, name: str) -> None:
    template = get_template(name, tokenizer)
    for messages, tools in ((CHAT, None), (TOOL_CHAT, TOOLS)):
        pairs = template.render_turns(messages, SYSTEM, tools)
        pieces: list[int] = []
        for prompt, response in pairs:
            pieces += tokenizer.encode(prompt, add_special_tokens=False)
            pieces += tokenizer.encode(response, add_special_tokens=False)
        assert pieces == tokenizer.encode(joined(pairs), add_special_tokens=False)


@pytest.mark.parametrize("name", ["llama2", "gemma", "qwen", "default"])
def test_braces_in_texts_are_kept(tokenizer: Any, name: str) -> None:
    system = "Fill {content} and {system} and {eos} literally."
    messages = [
        Message(Role.USER, "Say {content}"),
        Message(Role.ASSISTANT, "{bos} ok"),
    ]
    text = joined(get_template(name, tokenizer).render_turns(messages, system))
    assert system in text and "Say {content}" in text and "{bos} ok" in text
