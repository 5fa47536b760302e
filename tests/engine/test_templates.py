"""Chat templates render like the model families' own Jinja templates (applied by transformers).

References live in template_refs/ (see its README). For every family: multi-turn chat with and without
a system prompt, generation prompts for every turn, and (for families with tools) tool calls and
results.
"""

from __future__ import annotations

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
    reference,
)
from tests.support.tiny_models import build_tokenizer
from tunery.engine.templates import (
    apply_template_to_tokenizer,
    get_template,
    list_templates,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tokenizer(Path(tmp_path_factory.mktemp("tok")), "qwen2")


#: (template, reference Jinja, variables for the reference, also checked with a system prompt)
CHAT_CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("chatml", "chatml", {}, True),
    ("yi", "yi", {}, True),
    ("qwen", "qwen2_5", {}, True),
    ("qwen3", "qwen3", {}, True),
    ("llama2", "llama2", {"bos_token": "<s>", "eos_token": "</s>"}, True),
    ("llama3", "llama3", {"bos_token": "<|begin_of_text|>"}, True),
    # Mistral's template drops the system text of a finished conversation: see test_mistral_system.
    ("mistral", "mistral", {"bos_token": "<s>", "eos_token": "</s>"}, False),
    # Gemma 1/2 refuse a system message; with one, gemma writes it as Gemma 3 does.
    ("gemma", "gemma", {"bos_token": "<bos>"}, False),
    ("gemma", "gemma3", {"bos_token": "<bos>"}, True),
    ("gemma3", "gemma3", {"bos_token": "<bos>"}, True),
    ("phi3", "phi3", {"eos_token": "<|endoftext|>"}, True),
    ("phi4", "phi4", {}, True),
    ("deepseek3", "deepseek3", {"bos_token": "<｜begin▁of▁sentence｜>"}, True),
    ("glm4", "glm4", {}, True),
]


def _chat_params() -> list[Any]:
    params = []
    for name, ref, variables, with_system in CHAT_CASES:
        for system in [None, SYSTEM] if with_system else [None]:
            params.append(
                pytest.param(
                    name, ref, variables, system, id=f"{name}-{ref}-{bool(system)}"
                )
            )
    return params


@pytest.mark.parametrize(("name", "ref", "variables", "system"), _chat_params())
def test_chat_matches_family_jinja(
    tokenizer: Any, name: str, ref: str, variables: dict[str, Any], system: str | None
) -> None:
    template = get_template(name, tokenizer)
    jinja = ref_jinja(ref)
    pairs = template.render_turns(CHAT, system)
    assert joined(pairs) == reference(tokenizer, jinja, CHAT, system, **variables)
    for turn in range(len(pairs)):
        prompt = template.render_prompt(CHAT[: 2 * turn + 1], system)
        assert prompt == reference(
            tokenizer, jinja, CHAT[: 2 * turn + 1], system, generation=True, **variables
        )
        assert joined(pairs[:turn]) + pairs[turn][0] == prompt


#: (template, reference, variables, tool results passed as JSON objects)
TOOL_CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("qwen", "qwen2_5", {}, False),
    ("qwen3", "qwen3", {}, False),
    # Llama 3.1 `tojson`s string tool results (its `is iterable` test is true for strings); given JSON
    # objects it writes the raw JSON we train on. Tools go in the system message.
    (
        "llama3",
        "llama3_1",
        {"bos_token": "<|begin_of_text|>", "tools_in_user_message": False},
        True,
    ),
    ("mistral", "mistral", {"bos_token": "<s>", "eos_token": "</s>"}, False),
]


def _tool_params() -> list[Any]:
    # Mistral with a system prompt: see test_mistral_system
    return [
        pytest.param(*case, system, id=f"{case[0]}-{bool(system)}")
        for case in TOOL_CASES
        for system in (None, SYSTEM)
        if not (case[0] == "mistral" and system)
    ]


@pytest.mark.parametrize(
    ("name", "ref", "variables", "json_results", "system"), _tool_params()
)
def test_tool_chat_matches_family_jinja(
    tokenizer: Any,
    name: str,
    ref: str,
    variables: dict[str, Any],
    json_results: bool,
    system: str | None,
) -> None:
    template = get_template(name, tokenizer)
    jinja = ref_jinja(ref)
    pairs = template.render_turns(TOOL_CHAT, system, TOOLS)
    expected = reference(
        tokenizer,
        jinja,
        TOOL_CHAT,
        system,
        TOOLS,
        json_tool_results=json_results,
        **variables,
    )
    assert joined(pairs) == expected
    for turn in range(len(pairs)):
        messages = TOOL_CHAT[: 2 * turn + 1]
        prompt = template.render_prompt(messages, system, TOOLS)
        if name != "mistral":  # Mistral moves the tools to the last user turn
            assert joined(pairs[:turn]) + pairs[turn][0] == prompt
        expected_prompt = reference(
            tokenizer,
            jinja,
            messages,
            system,
            TOOLS,
            generation=True,
            json_tool_results=json_results,
            **variables,
        )
        assert prompt == expected_prompt


def test_mistral_system(tokenizer: Any) -> None:
    # Mistral writes the system text (and tools) into the last user turn, and only while the
    # conversation ends there; for training we keep it in the last user turn.
    template = get_template("mistral", tokenizer)
    jinja = ref_jinja("mistral")
    variables = {"bos_token": "<s>", "eos_token": "</s>"}
    pairs = template.render_turns(CHAT, SYSTEM)
    prompt = reference(
        tokenizer, jinja, CHAT[:-1], SYSTEM, generation=True, **variables
    )
    assert (
        joined(pairs[:-1]) + pairs[-1][0]
        == prompt
        == template.render_prompt(CHAT[:-1], SYSTEM)
    )
    assert pairs[-1][1] == f" {CHAT[-1].content}</s>"
    pairs = template.render_turns(TOOL_CHAT, SYSTEM, TOOLS)
    prompt = reference(
        tokenizer, jinja, TOOL_CHAT[:5], SYSTEM, TOOLS, generation=True, **variables
    )
    assert (
        joined(pairs[:2]) + pairs[2][0]
        == prompt
        == template.render_prompt(TOOL_CHAT[:5], SYSTEM, TOOLS)
    )
    assert f"[INST] {SYSTEM}\n\n{TOOL_CHAT[4].content}[/INST]" in prompt


def test_glm4_tools_match_its_jinja(tokenizer: Any) -> None:
    # glm-4-9b-chat takes tools from a message and calls as `metadata` (name) + content (arguments).
    import json

    from tunery.engine.data.types import Role
    from tunery.engine.templates import parse_function_content, parse_tools

    template = get_template("glm4", tokenizer)
    for system in (None, SYSTEM):
        for messages in (TOOL_CHAT, PARALLEL_CALLS):
            hf: list[dict[str, Any]] = (
                [{"role": "system", "content": system}] if system else []
            )
            for message in messages:
                if message.role == Role.FUNCTION:
                    for call in parse_function_content(message.content):
                        args = json.dumps(call.arguments, ensure_ascii=False)
                        hf.append(
                            {
                                "role": "assistant",
                                "metadata": call.name,
                                "content": args,
                            }
                        )
                else:
                    hf.append({"role": message.role.value, "content": message.content})
            hf[0]["tools"] = parse_tools(TOOLS)
            expected = tokenizer.apply_chat_template(
                hf, chat_template=ref_jinja("glm4"), tokenize=False
            )
            assert joined(template.render_turns(messages, system, TOOLS)) == expected


THINK_CHAT = [
    CHAT[0],
    CHAT[1].__class__(
        CHAT[1].role,
        "<think>\nThe user greets me.\n</think>\n\nI am a helpful assistant.",
    ),
    CHAT[2],
    CHAT[3].__class__(CHAT[3].role, "<think>\n2 plus 2 is 4.\n</think>\n\n2 + 2 = 4."),
]


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("messages", [CHAT, THINK_CHAT], ids=["plain", "reasoning"])
def test_qwen3_thinking_matches_its_jinja(
    tokenizer: Any, thinking: bool, messages: list[Any]
) -> None:
    template = get_template("qwen3", tokenizer)
    jinja = ref_jinja("qwen3")
    pairs = template.render_turns(messages, SYSTEM, enable_thinking=thinking)
    assert joined(pairs) == reference(
        tokenizer, jinja, messages, SYSTEM, enable_thinking=thinking
    )
    has_reasoning = "</think>" in messages[-1].content
    if thinking or has_reasoning:  # the (possibly empty) thought is trained
        assert pairs[-1][1].startswith("<think>\n")
    else:  # the empty thought belongs to the prompt, as in the generation prompt
        assert pairs[-1][0].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert pairs[-1][1] == messages[-1].content + "<|im_end|>\n"
    # earlier answers lose their reasoning
    assert "The user greets me" not in joined(pairs)
    for turn in range(len(pairs)):
        prompt = template.render_prompt(
            messages[: 2 * turn + 1], SYSTEM, enable_thinking=thinking
        )
        expected = reference(
            tokenizer,
            jinja,
            messages[: 2 * turn + 1],
            SYSTEM,
            generation=True,
            enable_thinking=thinking,
        )
        assert prompt == expected


@pytest.mark.parametrize("thinking", [True, False])
def test_deepseekr1_thinking(tokenizer: Any, thinking: bool) -> None:
    template = get_template("deepseekr1", tokenizer)
    jinja = ref_jinja("deepseekr1")
    variables = {"bos_token": "<｜begin▁of▁sentence｜>"}
    eos = "<｜end▁of▁sentence｜>"
    for messages in (CHAT[:4], THINK_CHAT):
        pairs = template.render_turns(messages, SYSTEM, enable_thinking=thinking)
        # everything before the trained answer is R1's own rendering (history without reasoning)
        history = reference(
            tokenizer, jinja, messages[:-1], SYSTEM, generation=True, **variables
        )
        skipped = "\n</think>\n\n"
        assert joined(pairs[:-1]) + pairs[-1][0] == history + (
            "" if thinking else skipped
        )
        prompt = template.render_prompt(messages[:-1], SYSTEM, enable_thinking=thinking)
        assert prompt == joined(pairs[:-1]) + pairs[-1][0]
        reasoning = "2 plus 2 is 4." if messages is THINK_CHAT else ""
        expected = (
            f"{reasoning}\n</think>\n\n2 + 2 = 4.{eos}"
            if thinking
            else f"2 + 2 = 4.{eos}"
        )
        assert pairs[-1][1] == expected


@pytest.mark.parametrize("name", sorted(list_templates()))
def test_saved_jinja_renders_like_template(tokenizer: Any, name: str) -> None:
    template = get_template(name, tokenizer)
    apply_template_to_tokenizer(template, tokenizer)
    saved = tokenizer.chat_template
    try:
        for thinking in (True, False):
            for system in (None, SYSTEM):
                for messages, tools in (
                    (CHAT, None),
                    (THINK_CHAT, None),
                    (TOOL_CHAT, TOOLS),
                    (PARALLEL_CALLS, TOOLS),
                ):
                    ours = joined(
                        template.render_turns(
                            messages, system, tools, enable_thinking=thinking
                        )
                    )
                    assert (
                        reference(
                            tokenizer,
                            saved,
                            messages,
                            system,
                            tools,
                            enable_thinking=thinking,
                        )
                        == ours
                    )
                    prompt = template.render_prompt(
                        messages[:-1], system, tools, enable_thinking=thinking
                    )
                    assert prompt == reference(
                        tokenizer,
                        saved,
                        messages[:-1],
                        system,
                        tools,
                        generation=True,
                        enable_thinking=thinking,
                    )
    finally:
        tokenizer.chat_template = None


GENERIC_EXPECTED = {
    "empty": "SHello, who are you?I am a helpful assistant.",
    "default": "System: S<eos>\nHuman: Hello, who are you?<eos>\nAssistant:I am a helpful assistant.<eos>\n",
    "alpaca": "S### Instruction:\nHello, who are you?\n\n### Response:\nI am a helpful assistant.<eos>\n\n",
    "vicuna": "S USER: Hello, who are you? ASSISTANT: I am a helpful assistant.<eos>",
    "baichuan2": "S<reserved_106>Hello, who are you?<reserved_107>I am a helpful assistant.",
}


@pytest.mark.parametrize("name", sorted(GENERIC_EXPECTED))
def test_generic_formats(tmp_path: Path, name: str) -> None:
    # no family Jinja to compare with: the layout is written out (eos from a gemma tokenizer: <eos>)
    gemma_tokenizer = build_tokenizer(tmp_path, "gemma")
    template = get_template(name, gemma_tokenizer)
    assert joined(template.render_turns(CHAT[:2], "S")) == GENERIC_EXPECTED[name]

