"""Serving settings from ``TUNERY_SERVE_*`` environment variables (the platform and ``tunery api`` share them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from tunery.serving.engines.base import EngineOptions, default_vllm_python


@dataclass(frozen=True)
class ServingConfig:
    #: engines with no request for this long are stopped (deployments keep theirs running)
    idle_seconds: float = 900.0
    #: vllm | hf | None (vllm when installed, else hf); targets that name their engine (gguf) keep it
    engine: str | None = None
    dtype: str = "auto"
    max_batch: int = 16
    max_adapters: int = 8
    max_lora_rank: int = 64
    max_model_len: int | None = None
    #: the longest answer when a request sets no max_tokens
    default_max_tokens: int = 2048
    vllm_python: str = field(default_factory=default_vllm_python)
    vllm_cpu_kv_gib: int = 1
    #: CPU threads of the gguf engine (None: llama-cpp-python's default)
    threads: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        numbers = {
            "idle_seconds": ("TUNERY_SERVE_IDLE_SECONDS", float),
            "max_batch": ("TUNERY_SERVE_MAX_BATCH", int),
            "max_adapters": ("TUNERY_SERVE_MAX_ADAPTERS", int),
            "max_lora_rank": ("TUNERY_SERVE_MAX_LORA_RANK", int),
            "max_model_len": ("TUNERY_SERVE_MAX_MODEL_LEN", int),
            "default_max_tokens": ("TUNERY_SERVE_DEFAULT_MAX_TOKENS", int),
            "vllm_cpu_kv_gib": ("TUNERY_VLLM_CPU_KV_GIB", int),
            "threads": ("TUNERY_SERVE_THREADS", int),
        }
        for key, (name, kind) in numbers.items():
            if env.get(name):
                values[key] = kind(env[name])
        if env.get("TUNERY_SERVE_ENGINE"):
            values["engine"] = env["TUNERY_SERVE_ENGINE"]
        if env.get("TUNERY_SERVE_DTYPE"):
            values["dtype"] = env["TUNERY_SERVE_DTYPE"]
        if env.get("TUNERY_VLLM_PYTHON"):
            values["vllm_python"] = env["TUNERY_VLLM_PYTHON"]
        return cls(**values)  # type: ignore[arg-type]

    def engine_options(self, model_path: str) -> EngineOptions:
        return EngineOptions(
            model_path=model_path,
            dtype=self.dtype,
            max_batch=self.max_batch,
            max_adapters=self.max_adapters,
            max_lora_rank=self.max_lora_rank,
            max_model_len=self.max_model_len,
            vllm_python=self.vllm_python,
            vllm_cpu_kv_gib=self.vllm_cpu_kv_gib,
            threads=self.threads,
        )
