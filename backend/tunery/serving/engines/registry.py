"""The one registry of inference engines: a name -> a factory taking :class:`EngineOptions`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tunery.serving.engines.base import EngineOptions, InferenceEngine

EngineFactory = Callable[[EngineOptions], InferenceEngine]
_ENGINES: dict[str, EngineFactory] = {}
#: names users may write for an engine (LLaMA-Factory's ``infer_backend`` values included)
ALIASES = {"huggingface": "hf", "transformers": "hf", "llama.cpp": "gguf", "llamacpp": "gguf"}


def register_engine(name: str, factory: EngineFactory) -> None:
    if name in _ENGINES:
        raise ValueError(f"engine {name!r} is already registered")
    _ENGINES[name] = factory


def _load() -> None:
    if not _ENGINES:
        from tunery.serving.engines import gguf, hf, vllm

        register_engine("hf", hf.HFEngine)
        register_engine("vllm", vllm.VLLMEngine)
        register_engine("gguf", gguf.GGUFEngine)  # GGUF files only (ServeTarget.engine), never the default


def engine_names() -> list[str]:
    _load()
    return sorted(_ENGINES)


def canonical(name: str) -> str:
    """The registered name for ``name`` (aliases resolved); ValueError naming the known engines."""
    _load()
    key = ALIASES.get(name.lower(), name.lower())
    if key not in _ENGINES:
        raise ValueError(f"unknown inference engine {name!r}; use one of: {', '.join(sorted(_ENGINES))}")
    return key


def vllm_installed(python: str) -> bool:
    """Whether the vLLM virtual environment exists (its interpreter and the vllm package)."""
    path = Path(python)
    if not path.is_file():
        return False
    site = path.parent.parent / "lib"
    return any(site.glob("python3*/site-packages/vllm/__init__.py"))


def default_engine(options: EngineOptions | None = None) -> str:
    """``$TUNERY_SERVE_ENGINE`` if set; else vllm when its environment is installed; else hf."""
    configured = os.environ.get("TUNERY_SERVE_ENGINE")
    if configured:
        return canonical(configured)
    python = options.vllm_python if options is not None else EngineOptions(model_path="").vllm_python
    return "vllm" if vllm_installed(python) else "hf"


def create_engine(name: str, options: EngineOptions) -> InferenceEngine:
    return _ENGINES[canonical(name)](options)
