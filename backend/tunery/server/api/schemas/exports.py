"""Request and response bodies of the exports API (export jobs, the format catalog, size estimates)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tunery.server.api.schemas.base import Request
from tunery.server.api.schemas.jobs import ArtifactPublic, JobPublic
from tunery.spec.export import ExportFormatName, GgufTypeName

ExportDtype = Literal["auto", "float32", "float16", "bfloat16"]
#: the dtypes a merged model can be saved in, in the order the catalog lists them
EXPORT_DTYPES: tuple[ExportDtype, ...] = ("auto", "float32", "float16", "bfloat16")


def _hf_only() -> list[ExportFormatName]:
    return ["hf"]


MODEL_ID_HELP = "A served model id: a base model's name, ft:<base>:<project>:<job> or ...:ckpt-<step>."


class ExportCreate(Request):
    """An export job: merge the model's adapters (and ``extra_adapters``) into its base, write ``formats``."""

    name: str | None = Field(default=None, max_length=200)
    model: str = Field(min_length=1, max_length=500, description=MODEL_ID_HELP)
    extra_adapters: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Served ids of LoRA fine-tunes on the same base, merged after the model's own, in order.",
    )
    formats: list[ExportFormatName] = Field(
        default_factory=_hf_only, min_length=1, description="What to write (see GET /api/exports/catalog)."
    )
    gguf_types: list[GgufTypeName] | None = Field(
        default=None, description="GGUF files to write (gguf only; default: the catalog's default types)."
    )
    dtype: ExportDtype = Field(default="auto", description="Saved dtype of the merged model (auto: the model's).")
    export_size: int = Field(default=5, ge=1, le=1000, description="Largest safetensors shard, in GB.")
    legacy_format: bool = Field(default=False, description="Save .bin (pickle) instead of safetensors.")
    ollama: bool = Field(default=True, description="Write an Ollama Modelfile next to the GGUF files.")
    verify: bool = Field(default=True, description="Load every file back and compare greedy tokens.")
    gptq_bits: int | None = Field(default=None, description="GPTQ bits: 2, 3, 4 or 8 (gptq only; needs a GPU).")
    gptq_dataset_version_id: str | None = Field(
        default=None, description="Calibration texts for GPTQ: a dataset version of this project (gptq only)."
    )
    hub_model_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=200,
        description="Push the export to this hub repository (owner/name).",
    )
    hub: Literal["huggingface", "modelscope"] = "huggingface"
    hub_token_secret: str | None = Field(
        default=None, max_length=200, description="The project secret holding the hub token (needs hub_model_id)."
    )
    hub_private: bool = Field(default=True, description="Create the hub repository as private.")


class ExportFormatPublic(BaseModel):
    name: str
    title: str
    serve_engine: str | None = Field(description="The /v1 engine that serves it; null: not servable.")
    needs_gpu: bool = Field(description="Refused unless a GPU worker is online.")
    summary: str


class GgufTypePublic(BaseModel):
    name: str
    bits_per_weight: float
    summary: str


class ExportCatalog(BaseModel):
    formats: list[ExportFormatPublic]
    gguf_types: list[GgufTypePublic]
    default_gguf_types: list[str] = Field(description="The GGUF types written when gguf_types is not given.")
    dtypes: list[ExportDtype]


class ExportEstimateRequest(Request):
    model: str = Field(min_length=1, max_length=500, description=MODEL_ID_HELP)
    formats: list[ExportFormatName] = Field(default_factory=_hf_only, min_length=1)
    gguf_types: list[GgufTypeName] | None = Field(default=None, description="Default: the catalog's defaults.")
    dtype: ExportDtype = "auto"
    gptq_bits: int = Field(default=4, description="GPTQ bits (gptq only).")


class ExportEstimateItem(BaseModel):
    format: str
    quantization: str | None = Field(description="The dtype (hf, onnx), GGUF type or GPTQ bits ('4bit').")
    size_bytes: int


class ExportEstimate(BaseModel):
    parameters: int = Field(description="Parameters of the merged model.")
    items: list[ExportEstimateItem]
    total_bytes: int


class ExportPublic(BaseModel):
    job: JobPublic
    source_model: str = Field(description="The served model id exported.")
    extra_adapters: list[str] = Field(description="Served ids merged after it, in order.")
    artifacts: list[ArtifactPublic] = Field(description="What the job wrote (registered once it succeeded).")
    request: dict[str, Any] = Field(
        default_factory=dict, description="What the job was created with (ExportCreate's fields)."
    )
