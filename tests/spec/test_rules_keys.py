"""Rules of spec/rules_keys.py: LLaMA-Factory keys refused where Tunery cannot honour them, by name; their
defaults (and the values the engine honours) pass."""

from __future__ import annotations

from typing import Any

import pytest

from tunery.spec import JobSpec, SpecError
from tunery.spec.data import TOOL_FORMATS

BASE: dict[str, Any] = {"model_name_or_path": "m", "dataset": "d", "template": "qwen"}


def _problems(**keys: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        JobSpec.from_mapping({**BASE, **keys})
    return {problem.field: problem.message for problem in info.value.problems}


def _accepted(**keys: Any) -> JobSpec:
    return JobSpec.from_mapping({**BASE, **keys})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("quantization_method", "gptq"),
        ("quantization_type", "fp4"),
        ("double_quantization", False),
        ("quantization_device_map", "auto"),
    ],
)
def test_quantization_options_need_quantization_bit(key: str, value: Any) -> None:
    assert _problems(**{key: value}) == {key: "only applies with quantization_bit (quantized loading); remove it"}


def test_quantization_options_with_quantization_bit_leave_the_refusal_to_it() -> None:
    problems = _problems(quantization_bit=4, quantization_method="bnb", quantization_type="fp4")
    assert set(problems) == {"quantization_bit"}


@pytest.mark.parametrize(
    ("key", "value", "default"),
    [
        ("image_max_pixels", 1024, 768 * 768),
        ("video_fps", 1.0, 2.0),
        ("video_maxlen", 64, 128),
        ("freeze_vision_tower", False, True),
        ("freeze_multi_modal_projector", False, True),
        ("freeze_language_model", True, False),
    ],
)
def test_multimodal_options_are_refused(key: str, value: Any, default: Any) -> None:
    message = _problems(**{key: value})[key]
    assert message == f"is a multimodal option; Tunery trains text-only models (leave it at {default!r})"
    _accepted(**{key: default})  # the default, as LLaMA-Factory's VLM YAMLs write it, passes


def test_loading_options() -> None:
    assert "transformers 5" in _problems(low_cpu_mem_usage=False)["low_cpu_mem_usage"]
    assert "one device" in _problems(offload_folder="/tmp/off")["offload_folder"]
    _accepted(low_cpu_mem_usage=True, offload_folder="offload")


def test_tool_format_names_come_from_the_catalog() -> None:
    for name in TOOL_FORMATS:
        assert _accepted(tool_format=name).data.tool_format == name
    message = _problems(tool_format="ling")["tool_format"]
    assert message == f"unknown tool format 'ling'; known: {', '.join(TOOL_FORMATS)}"


def test_tool_format_needs_a_named_template_and_a_chat_stage() -> None:
    assert "named chat template" in _problems(template="auto", tool_format="qwen")["tool_format"]
    assert "named chat template" in _problems(template=None, tool_format="qwen")["tool_format"]
    message = _problems(stage="pt", tool_format="qwen")["tool_format"]
    assert message == "does not apply to stage pt: raw text has no tools"


def test_data_processing_keys() -> None:
    assert "one training process" in _problems(data_shared_file_system=True)["data_shared_file_system"]
    message = _problems(stage="dpo", ignore_pad_token_for_loss=False)["ignore_pad_token_for_loss"]
    assert message.startswith("false does not apply to stage dpo")
    assert not _accepted(ignore_pad_token_for_loss=False).data.ignore_pad_token_for_loss  # sft: honoured
    assert _accepted(preprocessing_num_workers=16).data.preprocessing_num_workers == 16
    assert "preprocessing_num_workers" in _problems(preprocessing_num_workers=0)


def test_remove_unused_columns_is_refused() -> None:
    assert "every column" in _problems(remove_unused_columns=True)["remove_unused_columns"]
