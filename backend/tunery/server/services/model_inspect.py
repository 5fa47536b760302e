"""What a local model folder says about itself (torch-free): architecture, parameter count, a template guess.

Parameters are counted from the safetensors headers (exact, nothing loaded); the template is guessed from
the tokenizer's chat template markers, then from the model type.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunery.server.errors import InvalidError

#: chat-template markers -> template name (first match wins)
MARKERS: tuple[tuple[str, str], ...] = (
    ("<|start_header_id|>", "llama3"),
    ("<start_of_turn>", "gemma"),
    ("<|im_start|>", "qwen"),
    ("[INST]", "mistral"),
    ("<|user|>", "phi"),
)
#: model_type -> template name when the tokenizer has no chat template
MODEL_TYPES = {"llama": "llama3", "qwen2": "qwen", "qwen3": "qwen3", "mistral": "mistral", "gemma": "gemma",
               "gemma2": "gemma", "phi3": "phi"}  # fmt: skip
CONFIG_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "max_position_embeddings", "torch_dtype")
MAX_HEADER = 100 * 1024 * 1024


@dataclass
class ModelFacts:
    architecture: str | None = None
    num_parameters: int | None = None
    template: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidError(f"{path.name}: cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidError(f"{path.name}: must be a JSON object")
    return data


def count_parameters(folder: Path) -> int | None:
    """Sum of tensor sizes in the folder's *.safetensors headers; None when there are none."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with path.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > MAX_HEADER:
                raise InvalidError(f"{path.name}: safetensors header too large")
            header = json.loads(handle.read(size))
        total += sum(math.prod(item["shape"]) for name, item in header.items() if name != "__metadata__")
    return total


def is_reward_architecture(architecture: str | None) -> bool:
    """A model that scores rather than generates (served by /v1/score): a transformers sequence classifier."""
    return architecture is not None and architecture.endswith("ForSequenceClassification")


def guess_template(model_type: str | None, chat_template: str | None) -> str | None:
    if chat_template:
        for marker, name in MARKERS:
            if marker in chat_template:
                return name
        return "auto"  # the tokenizer's own template
    return MODEL_TYPES.get(model_type or "")


def inspect_model_dir(folder: Path) -> ModelFacts:
    """Facts from ``folder/config.json`` (required), ``tokenizer_config.json`` and safetensors headers."""
    if not (folder / "config.json").is_file():
        raise InvalidError(f"{folder}: no config.json; give a model folder saved by transformers")
    config = _read_json(folder / "config.json")
    tokenizer_config = (
        _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    )
    chat_template = tokenizer_config.get("chat_template")
    if not isinstance(chat_template, str) and (folder / "chat_template.jinja").is_file():
        chat_template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    architectures = config.get("architectures")
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    details = {key: config[key] for key in CONFIG_KEYS if key in config}
    details["has_chat_template"] = isinstance(chat_template, str)
    return ModelFacts(
        architecture=architectures[0] if isinstance(architectures, list) and architectures else model_type,
        num_parameters=count_parameters(folder),
        template=guess_template(model_type, chat_template if isinstance(chat_template, str) else None),
        details=details,
    )
