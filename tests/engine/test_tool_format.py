"""tool_format: a chat template switched to another tool format writes tool definitions and calls that way, in
Python (training text) and in the saved Jinja (inference); the registry matches the spec's catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.templates_support import CHAT, SYSTEM, TOOL_CHAT, TOOLS, joined, reference
from tests.engine.tokenize_support import load_tokenizer
from tests.support.tiny_models import build_tokenizer
from tunery.engine.templates import (
    TemplateError,
    ToolCall,
    apply_template_to_tokenizer,
    get_template,
    tool_format_names,
)
from tunery.engine.templates.tools import LLAMA3_TOOLS_HEAD, QWEN_TOOLS_HEAD
from tunery.engine.tokenize import build_training_data
from tunery.engine.tokenize.errors import TokenizeError
from tunery.spec import JobSpec
from tunery.spec.data import TOOL_FORMATS


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tokenizer(Path(tmp_path_factory.mktemp("tok")), "qwen2")


def test_registry_matches_the_spec_catalog() -> None:
    assert tool_format_names() == sorted(TOOL_FORMATS)


def test_tool_format_rewrites_the_tool_prompt(tokenizer: Any) -> None:
    qwen = get_template("qwen", tokenizer)
    switched = get_template("qwen", tokenizer, tool_format="llama3")
    text = joined(switched.render_turns(TOOL_CHAT, SYSTEM, TOOLS))
    assert LLAMA3_TOOLS_HEAD in text and QWEN_TOOLS_HEAD not in text
    assert '<|im_start|>assistant\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|im_end|>' in text
    assert "<tool_call>" not in text
    assert QWEN_TOOLS_HEAD in joined(qwen.render_turns(TOOL_CHAT, SYSTEM, TOOLS))
    # everything but the tools stays the template's own
    assert switched.render_turns(CHAT, SYSTEM) == qwen.render_turns(CHAT, SYSTEM)
    # calls in the new format are parsed back (serving), the old format is not
    assert switched.parse_tool_calls('{"name": "add", "parameters": {"a": 2}}') == [ToolCall("add", {"a": 2})]


def test_saved_jinja_writes_the_switched_format(tokenizer: Any) -> None:
    switched = get_template("qwen", tokenizer, tool_format="llama3")
    apply_template_to_tokenizer(switched, tokenizer)
    try:
        ours = joined(switched.render_turns(TOOL_CHAT, SYSTEM, TOOLS))
        assert reference(tokenizer, tokenizer.chat_template, TOOL_CHAT, SYSTEM, TOOLS) == ours
        prompt = switched.render_prompt(TOOL_CHAT[:-1], SYSTEM, TOOLS)
        assert reference(tokenizer, tokenizer.chat_template, TOOL_CHAT[:-1], SYSTEM, TOOLS, generation=True) == prompt
    finally:
        tokenizer.chat_template = None


def test_the_template_own_format_changes_nothing(tokenizer: Any) -> None:
    assert get_template("qwen", tokenizer, tool_format="qwen") is get_template("qwen", tokenizer)


def test_formats_that_cannot_be_switched_are_refused(tokenizer: Any) -> None:
    with pytest.raises(TemplateError, match="unknown tool format 'ling' \\(known: default, glm4, llama3, mistral"):
        get_template("qwen", tokenizer, tool_format="ling")
    with pytest.raises(TemplateError, match="template 'mistral' writes tools only as 'mistral'"):
        get_template("mistral", tokenizer, tool_format="qwen")
    with pytest.raises(TemplateError, match="tool format 'mistral' is written only by its own templates"):
        get_template("qwen", tokenizer, tool_format="mistral")
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    try:
        with pytest.raises(TemplateError, match="needs a named chat template"):
            get_template("auto", tokenizer, tool_format="qwen")
    finally:
        tokenizer.chat_template = None


def _tool_spec(model: Path, data_dir: Path) -> JobSpec:
    return JobSpec.from_mapping(
        {
            "model_name_or_path": str(model),
            "dataset": "glaive_toolcall_en_demo",
            "dataset_dir": str(data_dir),
            "template": "qwen",
            "tool_format": "llama3",
            "cutoff_len": 1024,
            "max_samples": 8,
        }
    )


def test_tokenized_rows_use_the_tool_format(tiny_llama: Path, demo_data_dir: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    spec = _tool_spec(tiny_llama, demo_data_dir)
    data = build_training_data(spec, tok, get_template("qwen", tok, tool_format="llama3"), None)
    text = tok.decode(data.train_dataset[0]["input_ids"])
    assert "Environment: ipython" in text and "<tools>" not in text


def test_tokenizing_refuses_a_template_without_the_tool_format(tiny_llama: Path, demo_data_dir: Path) -> None:
    tok = load_tokenizer(tiny_llama)
    spec = _tool_spec(tiny_llama, demo_data_dir)
    with pytest.raises(TokenizeError, match="tool_format 'llama3': the chat template 'qwen' writes tools as 'qwen'"):
        build_training_data(spec, tok, get_template("qwen", tok), None)
