"""The export section's refusals (torch-free, at validation) and the export job defaults of ``tunery export``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunery.engine.export.job import load_export_spec, with_export_defaults
from tunery.spec import JobSpec, SpecError


def problems(**keys: Any) -> dict[str, str]:
    flat = {"model_name_or_path": "m", "do_train": False, "export_dir": "out", **keys}
    try:
        JobSpec.from_mapping(flat)
    except SpecError as exc:
        return {problem.field: problem.message for problem in exc.problems}
    return {}


def test_a_plain_export_is_valid() -> None:
    assert problems() == {}
    assert problems(export_formats="hf,gguf", export_gguf_types="F16,Q8_0", adapter_name_or_path="a,b") == {}
    gptq = {"export_formats": "gptq", "export_quantization_bit": 4, "export_quantization_dataset": "c4.jsonl"}
    assert problems(**gptq, export_quantization_nsamples=16, export_quantization_maxlen=256) == {}


@pytest.mark.parametrize(
    ("keys", "field", "words"),
    [
        (
            {"export_formats": "gptq", "export_quantization_bit": 5, "export_quantization_dataset": "d"},
            "export_quantization_bit",
            "2, 3, 4 or 8",
        ),
        ({"export_formats": "gptq", "export_quantization_dataset": "d"}, "export_quantization_bit", "is required"),
        ({"export_formats": "gptq", "export_quantization_bit": 4}, "export_quantization_dataset", "is required"),
        ({"export_quantization_bit": 4, "export_quantization_dataset": "d"}, "export_quantization_bit", "add gptq"),
        ({"export_quantization_nsamples": 8}, "export_quantization_nsamples", "only applies to the GPTQ export"),
        ({"export_quantization_maxlen": 64}, "export_quantization_maxlen", "only applies to the GPTQ export"),
        ({"export_quantization_dataset": "d"}, "export_quantization_dataset", "only applies to the GPTQ export"),
        ({"export_gguf_types": "Q8_0"}, "export_gguf_types", "only applies with gguf"),
        ({"export_formats": "gguf", "export_gguf_types": []}, "export_gguf_types", "at least one"),
        ({"export_formats": "gguf", "export_legacy_format": True}, "export_legacy_format", "add hf"),
        ({"export_formats": []}, "export_formats", "at least one format"),
        ({"export_gguf_types": "Q5_K"}, "export_gguf_types.0", "Input should be"),
        ({"quantization_bit": 4, "adapter_name_or_path": "a"}, "quantization_bit", "load the base unquantized"),
    ],
)
def test_refusals_name_the_key(keys: dict[str, Any], field: str, words: str) -> None:
    found = problems(**keys)
    assert field in found, found
    assert words in found[field], found[field]


def test_merging_into_a_quantized_base_is_only_an_export_refusal() -> None:
    train = {"model_name_or_path": "m", "dataset": "d", "quantization_bit": 4, "adapter_name_or_path": "a"}
    with pytest.raises(SpecError) as info:
        JobSpec.from_mapping(train)
    messages = [p.message for p in info.value.problems if p.field == "quantization_bit"]
    assert messages and not any("unquantized" in m for m in messages)  # QLoRA's own refusal, not the merge one


def test_export_job_defaults() -> None:
    values = with_export_defaults({"model_name_or_path": "m", "export_dir": "out"})
    assert values["do_train"] is False and values["output_dir"] == "out"
    lf = with_export_defaults({"model_name_or_path": "m", "export_dir": "o", "export_quantization_bit": 4})
    assert lf["export_formats"] == ["gptq"]  # LF's quantized export writes the GPTQ model
    kept = with_export_defaults({"export_dir": "o", "export_quantization_bit": 4, "export_formats": ["hf", "gptq"]})
    assert kept["export_formats"] == ["hf", "gptq"]


@pytest.mark.parametrize(
    ("flat", "field"),
    [
        ({"model_name_or_path": "m"}, "export_dir"),
        ({"model_name_or_path": "m", "export_dir": "o", "do_train": True}, "do_train"),
        ({"model_name_or_path": "m", "export_dir": "o", "output_dir": "elsewhere"}, "output_dir"),
    ],
)
def test_export_job_refusals(flat: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        with_export_defaults(flat)
    assert [p.field for p in info.value.problems] == [field]


def test_llamafactory_merge_lora_file_loads_unchanged(tmp_path: Path) -> None:
    """LF's examples/merge_lora/llama3_lora_sft.yaml: no dataset, no do_train."""
    lf = {
        "model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "adapter_name_or_path": "saves/llama3-8b/lora/sft",
        "template": "llama3",
        "trust_remote_code": True,
        "export_dir": "output/llama3_lora_sft",
        "export_size": 5,
        "export_device": "cpu",
        "export_legacy_format": False,
    }
    assert JobSpec.from_mapping(lf).training.do_train is False
    job = tmp_path / "merge.yaml"
    job.write_text(yaml.safe_dump(lf))
    spec = load_export_spec(job)
    assert spec.training.output_dir == "output/llama3_lora_sft" and spec.export.export_formats == ["hf"]
    training_file = {"model_name_or_path": "m", "dataset": "d", "export_dir": "o"}  # trains, as before
    assert JobSpec.from_mapping(training_file).training.do_train is True


def test_rules_and_job_defaults_are_torch_free() -> None:
    code = (
        "import sys; from tunery.spec import JobSpec; from tunery.engine.export.job import load_export_spec; "
        "import tunery.spec.rules_export; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
