"""The transformers engine's continuous batching: concurrent, staggered and mixed-adapter requests give
exactly what one request alone (and transformers' own greedy generate) gives."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.serving.support import make_adapter
from tunery.serving.engines.base import EngineOptions
from tunery.serving.engines.hf import HFEngine
from tunery.serving.types import GenerationRequest, SamplingParams

T = TypeVar("T")
PROMPTS = [[5, 6, 7, 8, 9, 10], [100, 200], [300, 301, 302, 303, 304, 305, 306, 307, 308, 309], [7]]
GREEDY = SamplingParams(max_tokens=16, temperature=0)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def tokens(engine: HFEngine, request: GenerationRequest, delay: float = 0.0) -> dict[int, list[int]]:
    await asyncio.sleep(delay)
    out: dict[int, list[int]] = {}
    async for delta in engine.generate(request):
        out.setdefault(delta.index, []).extend(delta.token_ids)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_llama, root / f"a{seed}", seed) for seed in (1, 2)]


def reference(model_path: Path, prompt: list[int], adapter: Path | None = None) -> list[int]:
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        generated = model.generate(ids, max_new_tokens=16, do_sample=False, eos_token_id=None, pad_token_id=0)
    return [int(t) for t in generated[0, len(prompt) :]]


def test_concurrent_and_staggered_requests_match_single_generation(tiny_llama: Path) -> None:
    async def scenario() -> tuple[list[dict[int, list[int]]], list[dict[int, list[int]]]]:
        engine = HFEngine(EngineOptions(str(tiny_llama), max_batch=3))
        await engine.start()
        try:
            together = await asyncio.gather(*[tokens(engine, GenerationRequest(p, GREEDY)) for p in PROMPTS])
            staggered = await asyncio.gather(
                *[tokens(engine, GenerationRequest(p, GREEDY), delay=0.03 * i) for i, p in enumerate(PROMPTS)]
            )
        finally:
            await engine.stop()
        return together, staggered

    together, staggered = run(scenario())
    for prompt, first, second in zip(PROMPTS, together, staggered, strict=True):
        expected = reference(tiny_llama, prompt)
        assert first[0] == expected
        assert second[0] == expected


def test_mixed_adapters_in_one_batch(tiny_llama: Path, adapters: list[Path]) -> None:
    async def scenario() -> list[dict[int, list[int]]]:
        engine = HFEngine(EngineOptions(str(tiny_llama)))
        await engine.start()
        try:
            await engine.load_adapter("one", str(adapters[0]))
            await engine.load_adapter("two", str(adapters[1]))
            names = [None, "one", "two", "one"]
            return await asyncio.gather(
                *[tokens(engine, GenerationRequest(p, GREEDY, adapter=n)) for p, n in zip(PROMPTS, names, strict=True)]
            )
        finally:
            await engine.stop()

    results = run(scenario())
    assert results[0][0] == reference(tiny_llama, PROMPTS[0])
    assert results[1][0] == reference(tiny_llama, PROMPTS[1], adapters[0])
    assert results[2][0] == reference(tiny_llama, PROMPTS[2], adapters[1])
    assert results[3][0] == reference(tiny_llama, PROMPTS[3], adapters[0])
    assert results[1][0] != reference(tiny_llama, PROMPTS[1])


def test_cancel_n_seed_and_unload(tiny_llama: Path, adapters: list[Path]) -> None:
    sampled = SamplingParams(max_tokens=12, temperature=0.9, top_p=0.8, seed=5, presence_penalty=0.3)

    async def scenario() -> None:
        engine = HFEngine(EngineOptions(str(tiny_llama)))
        await engine.start()
        try:
            first = await tokens(engine, GenerationRequest(PROMPTS[0], sampled, n=3))
            again = await tokens(engine, GenerationRequest(PROMPTS[0], sampled, n=3))
            assert first == again and len({tuple(v) for v in first.values()}) > 1

            generation = engine.generate(GenerationRequest(PROMPTS[1], SamplingParams(max_tokens=400, temperature=0)))
            seen = 0
            reasons = []
            async for delta in generation:
                seen += len(delta.token_ids)
                if seen == 3:
                    generation.cancel(0)
                if delta.finish_reason:
                    reasons.append(delta.finish_reason)
            assert reasons == ["stop"] and seen < 400

            await engine.load_adapter("one", str(adapters[0]))
            await engine.unload_adapter("one")
            assert not hasattr(engine.model, "peft_config")
            assert (await tokens(engine, GenerationRequest(PROMPTS[0], GREEDY)))[0] == reference(tiny_llama, PROMPTS[0])
        finally:
            await engine.stop()

    run(scenario())
