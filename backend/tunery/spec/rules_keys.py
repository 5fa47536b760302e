"""Rules for LLaMA-Factory keys Tunery accepts but can honour only in some settings: each refuses, naming the key,
the values it cannot honour (every other value is read by the engine). Registered into
``tunery.spec.rules.RULES`` on import (rules.py imports this module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.spec.data import TOOL_FORMATS
from tunery.spec.errors import SpecProblem
from tunery.spec.method import MethodSection
from tunery.spec.model import ModelSection
from tunery.spec.rules import rule
from tunery.spec.stages import STAGE_SHAPES
from tunery.spec.training import TrainingSection

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tunery.spec.job import JobSpec

#: Options of quantized loading: they only mean something with quantization_bit.
QUANTIZATION_KEYS = ("quantization_method", "quantization_type", "double_quantization", "quantization_device_map")
#: Multimodal options of the model section (image/video preprocessing).
MULTIMODAL_MODEL_KEYS = (
    "image_max_pixels",
    "image_min_pixels",
    "video_max_pixels",
    "video_min_pixels",
    "video_fps",
    "video_maxlen",
)
#: Multimodal options of the method section (which parts of a vision-language model train).
MULTIMODAL_METHOD_KEYS = ("freeze_vision_tower", "freeze_multi_modal_projector", "freeze_language_model")


def _default(section: type[BaseModel], key: str) -> object:
    return section.model_fields[key].get_default(call_default_factory=True)


def _changed(values: BaseModel, key: str) -> bool:
    return bool(getattr(values, key) != _default(type(values), key))


@rule
def _quantization_options(spec: JobSpec) -> list[SpecProblem]:
    """LLaMA-Factory reads these only when quantization_bit is set (itself refused until QLoRA lands)."""
    if spec.model.quantization_bit is not None:
        return []
    return [
        SpecProblem(key, "only applies with quantization_bit (quantized loading); remove it")
        for key in QUANTIZATION_KEYS
        if _changed(spec.model, key)
    ]


@rule
def _multimodal_options(spec: JobSpec) -> list[SpecProblem]:
    problems = []
    for key in MULTIMODAL_MODEL_KEYS:
        if _changed(spec.model, key):
            problems.append(
                SpecProblem(
                    key,
                    f"is a multimodal option; Tunery trains text-only models (leave it at "
                    f"{_default(ModelSection, key)!r})",
                )
            )
    for key in MULTIMODAL_METHOD_KEYS:
        if _changed(spec.method, key):
            problems.append(
                SpecProblem(
                    key,
                    f"is a multimodal option; Tunery trains text-only models (leave it at "
                    f"{_default(MethodSection, key)!r})",
                )
            )
    return problems


@rule
def _loading(spec: JobSpec) -> list[SpecProblem]:
    model = spec.model
    problems = []
    if not model.low_cpu_mem_usage:
        problems.append(
            SpecProblem(
                "low_cpu_mem_usage",
                "false cannot be honoured: transformers 5 always loads the weights straight into an empty model "
                "(what true asks for); remove it",
            )
        )
    if _changed(model, "offload_folder"):
        problems.append(
            SpecProblem(
                "offload_folder",
                "only applies when a device map spreads the weights over devices and disk; Tunery loads the "
                "model on one device (remove it)",
            )
        )
    return problems


@rule
def _tool_format(spec: JobSpec) -> list[SpecProblem]:
    data = spec.data
    name = data.tool_format
    if name is None:
        return []
    if name not in TOOL_FORMATS:
        return [SpecProblem("tool_format", f"unknown tool format {name!r}; known: {', '.join(TOOL_FORMATS)}")]
    if STAGE_SHAPES[spec.method.stage] == "pt":
        return [SpecProblem("tool_format", f"does not apply to stage {spec.method.stage}: raw text has no tools")]
    if data.template in (None, "auto"):
        return [
            SpecProblem(
                "tool_format",
                "needs a named chat template (template: ...); the tokenizer's own chat template writes tools its "
                "own way",
            )
        ]
    return []


@rule
def _data_processing(spec: JobSpec) -> list[SpecProblem]:
    data, stage = spec.data, spec.method.stage
    problems = []
    if data.data_shared_file_system:
        problems.append(
            SpecProblem(
                "data_shared_file_system",
                "only matters for multi-node training; Tunery prepares the data in the one training process "
                "(remove it)",
            )
        )
    if not data.ignore_pad_token_for_loss and STAGE_SHAPES[stage] not in ("pt", "sft"):
        token_stages = ", ".join(name for name, shape in STAGE_SHAPES.items() if shape in ("pt", "sft"))
        problems.append(
            SpecProblem(
                "ignore_pad_token_for_loss",
                f"false does not apply to stage {stage}: its losses never read padding (only to: {token_stages})",
            )
        )
    return problems


@rule
def _training_columns(spec: JobSpec) -> list[SpecProblem]:
    if spec.training.remove_unused_columns:
        default = _default(TrainingSection, "remove_unused_columns")
        return [
            SpecProblem(
                "remove_unused_columns",
                f"the collators need every column the tokenizer writes (LLaMA-Factory forces it off too); leave it "
                f"at {default!r}",
            )
        ]
    return []
