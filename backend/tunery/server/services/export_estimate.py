"""What an export will write, before it runs: the catalog of formats (from tunery.spec.export_formats) and
the expected size of each file, parameters x bytes per weight of the dtype or GGUF type (ONNX ~ fp32)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tunery.server.api.schemas.exports import (
    EXPORT_DTYPES,
    ExportCatalog,
    ExportEstimate,
    ExportEstimateItem,
    ExportEstimateRequest,
    ExportFormatPublic,
    GgufTypePublic,
)
from tunery.server.auth.principal import Principal
from tunery.server.config import Settings
from tunery.server.db.models import RegisteredModel
from tunery.server.errors import InvalidError
from tunery.server.services.model_inspect import count_parameters
from tunery.server.services.served_models import resolve_with_base
from tunery.serving.errors import OpenAIError
from tunery.spec.export_formats import DEFAULT_GGUF_TYPES, EXPORT_FORMATS, GGUF_TYPES, GGUF_TYPES_BY_NAME

BYTES_PER_WEIGHT = {"float32": 4, "float16": 2, "bfloat16": 2}
#: the dtype "auto" stands for when the model's config names none
AUTO_FALLBACK = "float32"


def catalog() -> ExportCatalog:
    return ExportCatalog(
        formats=[
            ExportFormatPublic(
                name=f.name, title=f.title, serve_engine=f.serve_engine, needs_gpu=f.needs_gpu, summary=f.summary
            )
            for f in EXPORT_FORMATS
        ],
        gguf_types=[
            GgufTypePublic(name=t.name, bits_per_weight=t.bits_per_weight, summary=t.summary) for t in GGUF_TYPES
        ],
        default_gguf_types=list(DEFAULT_GGUF_TYPES),
        dtypes=list(EXPORT_DTYPES),
    )


def estimate(session: Session, settings: Settings, principal: Principal, body: ExportEstimateRequest) -> ExportEstimate:
    try:
        target, base_model_id = resolve_with_base(session, principal, settings, body.model)
    except OpenAIError as exc:
        raise InvalidError(f"model: {exc.message}", {"param": "model"}) from exc
    registered = session.get(RegisteredModel, base_model_id) if base_model_id else None
    folder = Path(target.base_path)
    parameters = _parameters(folder, registered, target.adapter_path is not None)
    if parameters is None:
        raise InvalidError(
            f"model: cannot tell how many parameters '{body.model}' has (no safetensors in its folder, none "
            "registered)",
            {"param": "model"},
        )
    dtype = body.dtype if body.dtype != "auto" else _config_dtype(folder, registered)
    items: list[ExportEstimateItem] = []
    for name in body.formats:
        if name == "hf":
            items.append(
                ExportEstimateItem(format="hf", quantization=dtype, size_bytes=parameters * BYTES_PER_WEIGHT[dtype])
            )
        elif name == "gguf":
            for kind in body.gguf_types or DEFAULT_GGUF_TYPES:
                bits = GGUF_TYPES_BY_NAME[kind].bits_per_weight
                items.append(
                    ExportEstimateItem(format="gguf", quantization=kind, size_bytes=round(parameters * bits / 8))
                )
        elif name == "onnx":
            items.append(ExportEstimateItem(format="onnx", quantization="float32", size_bytes=parameters * 4))
        elif name == "gptq":
            size = round(parameters * body.gptq_bits / 8)
            items.append(ExportEstimateItem(format="gptq", quantization=f"{body.gptq_bits}bit", size_bytes=size))
    return ExportEstimate(parameters=parameters, items=items, total_bytes=sum(item.size_bytes for item in items))


def _parameters(folder: Path, registered: RegisteredModel | None, on_base: bool) -> int | None:
    """The merged model has its base's parameters (a LoRA merge adds none); a full model folder is counted."""
    if registered is not None and registered.num_parameters and (on_base or str(folder) == registered.path_or_hub_id):
        return int(registered.num_parameters)
    if folder.is_dir():
        try:
            return count_parameters(folder)
        except (OSError, ValueError, InvalidError):
            return None
    return None


def _config_dtype(folder: Path, registered: RegisteredModel | None) -> str:
    """The dtype the model was saved in (config.json ``dtype`` / ``torch_dtype``), as "auto" keeps it."""
    config: dict[str, Any] = dict(registered.details) if registered is not None else {}
    path = folder / "config.json"
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            config = loaded if isinstance(loaded, dict) else config
        except (OSError, ValueError):
            pass
    value = config.get("dtype") or config.get("torch_dtype")
    return str(value) if value in BYTES_PER_WEIGHT else AUTO_FALLBACK
