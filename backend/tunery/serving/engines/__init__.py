"""Inference engines, one registry: ``vllm`` (vLLM's OpenAI server as a managed subprocess), ``hf``
(transformers with continuous batching in a thread) and ``gguf`` (a GGUF file on llama.cpp, in a thread)."""

from tunery.serving.engines.base import EngineOptions, Generation, InferenceEngine
from tunery.serving.engines.registry import create_engine, default_engine, engine_names, register_engine

__all__ = [
    "EngineOptions",
    "Generation",
    "InferenceEngine",
    "create_engine",
    "default_engine",
    "engine_names",
    "register_engine",
]
