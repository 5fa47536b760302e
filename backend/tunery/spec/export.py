"""Export section of the job spec: LLaMA-Factory's export keys (``llamafactory-cli export``) and Tunery's own
(formats, GGUF types, Ollama, hub push, verification)."""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field, field_validator

from tunery.spec.base import Section, split_csv
from tunery.spec.export_formats import DEFAULT_GGUF_TYPES, EXPORT_FORMATS, GGUF_TYPES

ExportFormatName = Literal["hf", "gguf", "onnx", "gptq"]
GgufTypeName = Literal["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M"]


def _default_formats() -> list[ExportFormatName]:
    return ["hf"]


def _default_gguf_types() -> list[GgufTypeName]:
    return [cast(GgufTypeName, name) for name in DEFAULT_GGUF_TYPES]


class ExportSection(Section):
    """What ``tunery export`` writes. The model section says what is merged (model_name_or_path +
    adapter_name_or_path, in order); infer_dtype chooses the saved dtype."""

    # LLaMA-Factory's export keys
    export_dir: str | None = Field(default=None, description="Where the exported files go (required to export).")
    export_size: int = Field(default=5, gt=0, description="Largest safetensors shard, in GB.")
    export_device: Literal["cpu", "auto"] = Field(default="cpu", description="Where the merge runs.")
    export_quantization_bit: int | None = Field(default=None, description="GPTQ bits (2, 3, 4 or 8); needs a GPU.")
    export_quantization_dataset: str | None = Field(
        default=None, description="Calibration text for GPTQ: a JSON/JSONL file of texts or a dataset file."
    )
    export_quantization_nsamples: int = Field(default=128, gt=0, description="GPTQ calibration samples.")
    export_quantization_maxlen: int = Field(default=1024, gt=0, description="Tokens per GPTQ calibration sample.")
    export_legacy_format: bool = Field(default=False, description="Save .bin (pickle) instead of safetensors.")
    export_hub_model_id: str | None = Field(default=None, description="Push the export to this hub repository.")
    # Tunery's keys
    export_formats: list[ExportFormatName] = Field(
        default_factory=_default_formats,
        description="What to write: " + ", ".join(f.name for f in EXPORT_FORMATS) + " (comma-separated or a list).",
    )
    export_gguf_types: list[GgufTypeName] = Field(
        default_factory=_default_gguf_types,
        description="GGUF files to write (with gguf in export_formats): " + ", ".join(t.name for t in GGUF_TYPES),
    )
    export_ollama: bool = Field(default=True, description="Write an Ollama Modelfile next to the GGUF files.")
    export_verify: bool = Field(
        default=True,
        description="Load every written model back and greedy-decode a fixed prompt against the merged model.",
    )
    export_hub: Literal["huggingface", "modelscope"] = Field(default="huggingface", description="Which hub to push to.")
    export_hub_token_env: str = Field(
        default="HF_TOKEN", description="Environment variable holding the hub token (never written to the spec)."
    )
    export_hub_private: bool = Field(default=True, description="Create the hub repository as private.")

    _split = field_validator("export_formats", "export_gguf_types", mode="before")(split_csv)
