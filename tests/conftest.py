"""Shared fixtures: tiny models built locally, the shared demo data folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.tiny_models import SHARED_DATA, build_model

FAMILIES = ("llama", "qwen2", "mistral", "gemma", "phi3")


@pytest.fixture(scope="session")
def demo_data_dir() -> Path:
    """LLaMA-Factory's demo datasets with their dataset_info.json (read-only)."""
    if not (SHARED_DATA / "dataset_info.json").exists():
        pytest.fail(f"demo data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Returns ``make(family="llama", layers=2)`` -> folder with a saved tiny model and tokenizer."""
    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[tuple[str, int], Path] = {}

    def make(family: str = "llama", layers: int = 2) -> Path:
        key = (family, layers)
        if key not in built:
            built[key] = build_model(root / f"{family}-{layers}", family, layers)
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_llama(tiny_model_factory: Callable[..., Path]) -> Path:
    return tiny_model_factory("llama")
