"""The export section's value types and the export format registry name the same things."""

from __future__ import annotations

from typing import get_args

import pytest

from tunery.spec.errors import SpecError
from tunery.spec.export import ExportFormatName, GgufTypeName
from tunery.spec.export_formats import DEFAULT_GGUF_TYPES, EXPORT_FORMATS, GGUF_TYPES
from tunery.spec.job import JobSpec


def test_literals_equal_the_registry() -> None:
    assert set(get_args(ExportFormatName)) == {fmt.name for fmt in EXPORT_FORMATS}
    assert set(get_args(GgufTypeName)) == {kind.name for kind in GGUF_TYPES}
    assert set(DEFAULT_GGUF_TYPES) <= set(get_args(GgufTypeName))


def test_lf_flat_keys_and_csv_lists_are_read() -> None:
    spec = JobSpec.from_mapping(
        {
            "model_name_or_path": "m",
            "adapter_name_or_path": "saves/lora",
            "template": "llama3",
            "export_dir": "out",
            "export_size": 2,
            "export_formats": "hf,gguf",
            "export_gguf_types": "Q8_0,Q4_K_M",
        }
    )
    assert spec.export.export_formats == ["hf", "gguf"]
    assert spec.export.export_gguf_types == ["Q8_0", "Q4_K_M"]
    assert spec.export.export_size == 2


def test_an_unknown_gguf_type_is_refused_by_name() -> None:
    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping({"model_name_or_path": "m", "export_formats": "gguf", "export_gguf_types": "Q3_K"})
    assert "export_gguf_types" in str(caught.value)
