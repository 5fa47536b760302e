"""The vLLM engine (vLLM's OpenAI server in .venv-vllm, `make vllm`) against the transformers engine: the
same greedy chat request gives the same answer, and two adapters of one base answer in one vLLM process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from tests.serving.support import make_adapter
from tunery.serving.chat import chat_response, chat_stream, prepare_chat
from tunery.serving.config import ServingConfig
from tunery.serving.engines.registry import vllm_installed
from tunery.serving.generation import Defaults
from tunery.serving.manager import EngineManager
from tunery.serving.schemas import ChatCompletionRequest
from tunery.serving.types import ServeTarget

pytestmark = pytest.mark.skipif(
    not vllm_installed(ServingConfig().vllm_python), reason="vLLM is not installed: run `make vllm` (.venv-vllm)"
)
QUESTIONS = ["Hello, who are you?", "Tell me about the quick brown fox.", "What is 2+2?"]


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as blocking_portal:
        yield blocking_portal


@pytest.fixture(scope="module")
def managers(portal: BlockingPortal) -> Iterator[dict[str, EngineManager]]:
    found = {kind: EngineManager(ServingConfig(engine=kind, max_model_len=1024)) for kind in ("vllm", "hf")}
    yield found
    for manager in found.values():
        portal.call(manager.shutdown)


@pytest.fixture(scope="module")
def adapters(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("vllm-adapters")
    return [make_adapter(tiny_llama, root / f"a{seed}", seed) for seed in (3, 4)]


def ask(
    portal: BlockingPortal, manager: EngineManager, target: ServeTarget, question: str, stream: bool = False
) -> Any:
    request = ChatCompletionRequest.model_validate(
        {
            "model": target.model_id,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 16,
        }
    )

    async def go() -> Any:
        async with manager.lease(target) as lease:
            prepared = prepare_chat(lease, request, target.model_id, Defaults())
            if not stream:
                return await chat_response(prepared)
            return [chunk async for chunk in chat_stream(prepared, include_usage=False)]

    return portal.call(go)


def test_vllm_and_hf_answer_a_greedy_request_identically(
    portal: BlockingPortal, managers: dict[str, EngineManager], tiny_llama: Path
) -> None:
    target = ServeTarget("tiny", str(tiny_llama), "llama3")
    for question in QUESTIONS:
        answers = {kind: ask(portal, manager, target, question) for kind, manager in managers.items()}
        vllm, hf = answers["vllm"], answers["hf"]
        assert vllm["system_fingerprint"] == "tunery-vllm" and hf["system_fingerprint"] == "tunery-hf"
        assert vllm["choices"][0]["message"] == hf["choices"][0]["message"]
        assert vllm["choices"][0]["finish_reason"] == hf["choices"][0]["finish_reason"]
        assert vllm["usage"] == hf["usage"]
    streamed = ask(portal, managers["vllm"], target, QUESTIONS[0], stream=True)
    text = "".join(
        __import__("json").loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in streamed
        if line.startswith("data: {")
    )
    assert text == ask(portal, managers["hf"], target, QUESTIONS[0])["choices"][0]["message"]["content"]


def test_two_adapters_of_one_base_answer_in_one_vllm_engine(
    portal: BlockingPortal, managers: dict[str, EngineManager], tiny_llama: Path, adapters: list[Path]
) -> None:
    base = ServeTarget("tiny", str(tiny_llama), "llama3")
    tuned = [ServeTarget(f"ft:tiny:p:job{i}", str(tiny_llama), "llama3", str(path)) for i, path in enumerate(adapters)]
    texts: dict[str, dict[str, str]] = {}
    for kind, manager in managers.items():
        texts[kind] = {
            target.model_id: ask(portal, manager, target, QUESTIONS[1])["choices"][0]["message"]["content"]
            for target in (base, *tuned)
        }
    assert len(set(texts["vllm"].values())) == 3, texts
    assert texts["vllm"] == texts["hf"]

    vllm = managers["vllm"]
    assert list(vllm.slots) == [str(tiny_llama)]
    slot = vllm.slots[str(tiny_llama)]
    assert set(slot.adapters) == {t.adapter_name for t in tuned}
    served = httpx.get(f"http://127.0.0.1:{slot.engine.port}/v1/models").json()
    assert {m["id"] for m in served["data"]} >= {t.adapter_name for t in tuned}
