"""What every inference engine provides: start/stop, adapters by name, token-level generation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tunery.serving.types import GenerationRequest, TokenDelta


@dataclass(frozen=True)
class EngineOptions:
    """How to run an engine for one base model."""

    model_path: str
    #: float32 | bfloat16 | float16 | auto (float32 on CPU, the model's dtype on GPU)
    dtype: str = "auto"
    #: most sequences decoded together (hf) / max_num_seqs (vllm)
    max_batch: int = 16
    #: adapters one engine keeps loaded (the least recently used one is unloaded past this); 0: none (vLLM
    #: then runs without LoRA layers)
    max_adapters: int = 8
    max_lora_rank: int = 64
    #: context length; None: the model's
    max_model_len: int | None = None
    #: the Python of the virtual environment that has vLLM
    vllm_python: str = field(default_factory=lambda: default_vllm_python())
    #: KV cache size for vLLM on CPU (GiB)
    vllm_cpu_kv_gib: int = 1
    vllm_extra_args: tuple[str, ...] = ()
    startup_timeout: float = 600.0
    #: CPU threads of the gguf engine (llama.cpp); None: llama-cpp-python's default (half the cores)
    threads: int | None = None


def default_vllm_python() -> str:
    """``$TUNERY_VLLM_PYTHON``, else ``.venv-vllm/bin/python`` of the repository (as ``make`` builds it)."""
    configured = os.environ.get("TUNERY_VLLM_PYTHON")
    if configured:
        return configured
    root = Path(__file__).resolve().parents[4]
    return str(root / ".venv-vllm" / "bin" / "python")


class Generation(Protocol):
    """A running generation: iterate for token deltas; ``cancel`` ends one choice early."""

    def __aiter__(self) -> AsyncIterator[TokenDelta]: ...

    def cancel(self, index: int) -> None: ...

    async def aclose(self) -> None: ...


class InferenceEngine(Protocol):
    kind: str
    options: EngineOptions

    @property
    def running(self) -> bool: ...

    @property
    def context_length(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def load_adapter(self, name: str, path: str) -> None: ...

    async def unload_adapter(self, name: str) -> None: ...

    def generate(self, request: GenerationRequest) -> Generation: ...
