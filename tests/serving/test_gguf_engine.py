"""The gguf engine (llama.cpp through llama-cpp-python) on an F32 GGUF file of the tiny llama: the same
greedy tokens and log-probs as the hf engine on the model folder, stop/max_tokens/cancel, adapters refused,
and /v1/chat/completions answered through the serving HTTP layer (the openai SDK against `tunery api`'s app)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("llama_cpp", reason="the gguf engine needs llama-cpp-python (deploy/setup_gguf.sh)")

from openai import OpenAI

from tests.serving.support import running_server
from tests.support.gguf_model import write_llama_gguf
from tunery.serving.engines.base import EngineOptions
from tunery.serving.engines.gguf import GGUFEngine
from tunery.serving.engines.hf import HFEngine
from tunery.serving.manager import EngineManager
from tunery.serving.types import (
    EngineError,
    GenerationRequest,
    SamplingParams,
    ServeTarget,
    TokenDelta,
)

T = TypeVar("T")
PROMPTS = [[5, 6, 7, 8, 9, 10], [100, 200], [300, 301, 302, 303, 304, 305, 306, 307, 308, 309], [7]]
GREEDY = SamplingParams(max_tokens=32, temperature=0)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def export_dir(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder as `tunery export` leaves it: the HF model with its tokenizer and model-F32.gguf."""
    folder = tmp_path_factory.mktemp("export") / "tiny"
    shutil.copytree(tiny_llama, folder)
    write_llama_gguf(tiny_llama, folder / "model-F32.gguf")
    return folder


async def deltas(engine: Any, request: GenerationRequest, cancel_after: int | None = None) -> list[TokenDelta]:
    out: list[TokenDelta] = []
    generation = engine.generate(request)
    async for delta in generation:
        out.append(delta)
        if cancel_after is not None and len(out) == cancel_after:
            generation.cancel(delta.index)
    await generation.aclose()
    return out


def tokens(out: list[TokenDelta], index: int = 0) -> list[int]:
    return [t for d in out if d.index == index for t in d.token_ids]


async def both(model: Path, requests: list[GenerationRequest]) -> tuple[list[list[TokenDelta]], ...]:
    """Each request on the gguf engine (model-F32.gguf) and on the hf engine (the folder), one after the other."""
    results: list[list[list[TokenDelta]]] = []
    for engine in (GGUFEngine(EngineOptions(str(model / "model-F32.gguf"))), HFEngine(EngineOptions(str(model)))):
        await engine.start()
        try:
            results.append([await deltas(engine, request) for request in requests])
        finally:
            await engine.stop()
    return results[0], results[1]


def test_greedy_tokens_and_logprobs_equal_the_hf_engine(export_dir: Path) -> None:
    from transformers import AutoTokenizer

    from tunery.engine.data.types import Message, Role
    from tunery.engine.templates import get_template

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    chat = get_template("llama3", tokenizer).render_prompt([Message(Role.USER, "Hello there")], None, None)
    prompts = [*PROMPTS, tokenizer(chat, add_special_tokens=False)["input_ids"]]
    scored = SamplingParams(max_tokens=8, temperature=0, logprobs=3, prompt_logprobs=True)
    penalized = SamplingParams(max_tokens=32, temperature=0, repetition_penalty=1.3, presence_penalty=0.5)
    requests = [
        *[GenerationRequest(p, GREEDY) for p in prompts],
        GenerationRequest(prompts[0], GREEDY, n=2),  # the second choice reuses the cached prompt
        GenerationRequest(prompts[2], scored),
        GenerationRequest(prompts[2], penalized),
    ]
    gguf, hf = run(both(export_dir, requests))
    for request, ours, theirs in zip(requests, gguf, hf, strict=True):
        for index in range(request.n):
            assert tokens(ours, index) == tokens(theirs, index), f"prompt {request.prompt_ids}"
            assert len(tokens(ours, index)) == request.params.max_tokens
            assert [d.finish_reason for d in ours if d.index == index][-1] == "length"
    ours_lp = [e for d in gguf[-2] for e in d.logprobs or []]
    theirs_lp = [e for d in hf[-2] for e in d.logprobs or []]
    assert len(ours_lp) == 8
    for mine, other in zip(ours_lp, theirs_lp, strict=True):
        assert mine.token_id == other.token_id and mine.logprob == pytest.approx(other.logprob, abs=1e-3)
        assert [t for t, _ in mine.top] == [t for t, _ in other.top]
    ours_prompt, theirs_prompt = gguf[-2][0].prompt_logprobs, hf[-2][0].prompt_logprobs
    assert ours_prompt is not None and theirs_prompt is not None and ours_prompt[0] is None
    for mine_p, other_p in zip(ours_prompt[1:], theirs_prompt[1:], strict=True):
        assert mine_p is not None and other_p is not None
        assert mine_p.token_id == other_p.token_id and mine_p.logprob == pytest.approx(other_p.logprob, abs=1e-3)


def test_context_stop_tokens_max_tokens_cancel_and_seeds(export_dir: Path, tiny_llama: Path) -> None:
    config = json.loads((tiny_llama / "config.json").read_text())

    async def scenario() -> dict[str, Any]:
        engine = GGUFEngine(EngineOptions(str(export_dir / "model-F32.gguf")))
        await engine.start()
        try:
            greedy = tokens(await deltas(engine, GenerationRequest(PROMPTS[0], GREEDY)))
            stop = greedy[3]
            stopped = await deltas(engine, GenerationRequest(PROMPTS[0], SamplingParams(32, 0, stop_token_ids=(stop,))))
            short = await deltas(engine, GenerationRequest(PROMPTS[0], SamplingParams(max_tokens=5, temperature=0)))
            cancelled = await deltas(engine, GenerationRequest(PROMPTS[0], GREEDY), cancel_after=2)
            sampled = SamplingParams(max_tokens=12, temperature=1.5, top_p=0.95, top_k=50, seed=7)
            seeded = [tokens(await deltas(engine, GenerationRequest(PROMPTS[1], sampled)), 0) for _ in range(2)]
            two = await deltas(engine, GenerationRequest(PROMPTS[1], sampled, n=2))
            together = await asyncio.gather(*[deltas(engine, GenerationRequest(p, GREEDY)) for p in PROMPTS])
            return {
                "context": engine.context_length, "greedy": greedy, "stop": stop, "stopped": stopped, "short": short,
                "cancelled": cancelled, "seeded": seeded, "two": two, "together": together,
            }  # fmt: skip
        finally:
            await engine.stop()

    got = run(scenario())
    assert got["context"] == config["max_position_embeddings"]  # from the GGUF's llama.context_length
    stopped = got["stopped"]
    assert tokens(stopped) == got["greedy"][:3] and stopped[-1].finish_reason == "stop"
    assert stopped[-1].token_ids == [] and sum(d.generated for d in stopped) == 4  # the stop token counts
    assert tokens(got["short"]) == got["greedy"][:5] and got["short"][-1].finish_reason == "length"
    cancelled = got["cancelled"]
    assert tokens(cancelled) == got["greedy"][:2] and cancelled[-1].finish_reason == "stop"
    assert got["seeded"][0] == got["seeded"][1]  # the same seed, the same sample
    assert tokens(got["two"], 0) == got["seeded"][0]  # choice i samples with seed + i
    assert tokens(got["two"], 1) != tokens(got["two"], 0)
    together = got["together"]  # concurrent requests queue and run one at a time, each as if alone
    assert tokens(together[0]) == got["greedy"] and all(len(tokens(out)) == 32 for out in together)


def test_adapters_are_refused_clearly(export_dir: Path) -> None:
    async def scenario() -> None:
        engine = GGUFEngine(EngineOptions(str(export_dir / "model-F32.gguf")))
        await engine.start()
        try:
            with pytest.raises(EngineError, match="merged"):
                await engine.load_adapter("lora-x", str(export_dir))
            with pytest.raises(EngineError, match="no adapters"):
                engine.generate(GenerationRequest([5, 6], GREEDY, adapter="lora-x"))
        finally:
            await engine.stop()
        manager = EngineManager()
        target = ServeTarget("tiny:gguf", str(export_dir / "model-F32.gguf"), "llama3", engine="gguf")
        try:
            with pytest.raises(EngineError, match="gguf engine only"):
                await manager.deploy(target, "hf")
            adapted = ServeTarget("tiny:gguf:lora", target.base_path, "llama3", str(export_dir), engine="gguf")
            with pytest.raises(EngineError, match="merged"):
                async with manager.lease(adapted):
                    pass
        finally:
            await manager.shutdown()

    run(scenario())
    missing = GGUFEngine(EngineOptions(str(export_dir / "missing.gguf")))
    with pytest.raises(EngineError, match="not found"):
        run(missing.start())


def test_a_gguf_file_without_its_folder_brings_its_own_tokenizer(export_dir: Path, tmp_path: Path) -> None:
    """No tokenizer_path and no tokenizer beside the file: transformers rebuilds it from the GGUF vocabulary,
    with the same ids as the export folder's tokenizer."""
    from transformers import AutoTokenizer

    bare = tmp_path / "model-F32.gguf"
    shutil.copy(export_dir / "model-F32.gguf", bare)
    text = "<|start_header_id|>user<|end_header_id|>\n\nThe quick brown fox, 你好<|eot_id|>"
    expected = AutoTokenizer.from_pretrained(export_dir)(text, add_special_tokens=False)["input_ids"]

    async def scenario() -> tuple[str, list[int]]:
        manager = EngineManager()
        try:
            async with manager.lease(ServeTarget("bare", str(bare), "llama3", engine="gguf")) as lease:
                return lease.engine.kind, lease.tokenizer(text, add_special_tokens=False)["input_ids"]
        finally:
            await manager.shutdown()

    assert run(scenario()) == ("gguf", expected)


def test_chat_completions_on_a_gguf_target_through_the_api(export_dir: Path, tmp_path: Path) -> None:
    """`tunery api` with gguf_file: the app serves the GGUF file on the gguf engine with the folder's tokenizer;
    the openai SDK gets the same greedy answer as from the folder on the hf engine."""
    from tunery.serving.standalone import create_standalone_app, served_model
    from tunery.spec.job import load_spec

    job = tmp_path / "infer.yaml"
    job.write_text(
        f"model_name_or_path: {export_dir}\ngguf_file: model-F32.gguf\ntemplate: llama3\n"
        "do_sample: false\nmax_new_tokens: 12\n"
    )
    model = served_model(load_spec(job, ["do_train=false"]), None, "tiny-gguf")
    assert model.engine == "gguf" and model.target.engine == "gguf"
    assert model.target.base_path == str(export_dir / "model-F32.gguf")
    assert model.target.tokenizer_path == str(export_dir)
    folder_job = tmp_path / "folder.yaml"
    folder_job.write_text(job.read_text().replace("gguf_file: model-F32.gguf\n", ""))
    reference = served_model(load_spec(folder_job, ["do_train=false"]), "hf", "tiny")

    messages: Any = [{"role": "user", "content": "Hello there"}]
    answers = {}
    for served in (model, reference):
        app = create_standalone_app(served, EngineManager())
        with running_server(app) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
            assert [m.id for m in client.models.list()] == [served.target.model_id]
            whole = client.chat.completions.create(model=served.target.model_id, messages=messages)
            stream = client.chat.completions.create(model=served.target.model_id, messages=messages, stream=True)
            streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 12
            assert streamed == whole.choices[0].message.content
            answers[served.target.model_id] = (whole.choices[0].message.content, whole.system_fingerprint)
    assert answers["tiny-gguf"][0] == answers["tiny"][0] and answers["tiny-gguf"][0]
    assert answers["tiny-gguf"][1] == "tunery-gguf"
