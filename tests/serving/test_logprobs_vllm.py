"""Log-probs and the vLLM-style sampling fields with the vLLM engine (.venv-vllm, `make vllm`): the same
numbers as the transformers engine (itself checked against the model in test_logprobs.py), whole and
streamed, through the openai SDK against `tunery api`'s app. One vLLM process for the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.serving.logprob_support import PROMPTS, QUESTION, job_file, joined_legacy, served
from tunery.serving.config import ServingConfig
from tunery.serving.engines.registry import vllm_installed

pytestmark = pytest.mark.skipif(
    not vllm_installed(ServingConfig().vllm_python), reason="vLLM is not installed: run `make vllm` (.venv-vllm)"
)
#: vLLM's CPU kernels against transformers', both float32
ENGINES_AGREE = 1e-3
FOX = [{"role": "user", "content": "Tell me about the quick brown fox."}]


@pytest.fixture(scope="module")
def clients(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OpenAI]]:
    job = job_file(tmp_path_factory.mktemp("logprobs-vllm"), tiny_llama)
    with served(job, "vllm") as vllm, served(job, "hf") as hf:
        yield {"vllm": vllm, "hf": hf}


def both(clients: dict[str, OpenAI], call: Any, **request: Any) -> tuple[Any, Any]:
    """``call(client, **request)`` on the vLLM engine, then on the transformers engine."""
    return call(clients["vllm"], **request), call(clients["hf"], **request)


def chat(client: OpenAI, **request: Any) -> Any:
    return client.chat.completions.create(**request)


def same_entries(vllm: list[Any], hf: list[Any]) -> None:
    """Chat log-prob entries: the same tokens with the same log-probs and alternatives."""
    assert [e.token for e in vllm] == [e.token for e in hf]
    assert [e.bytes for e in vllm] == [e.bytes for e in hf]
    assert [e.logprob for e in vllm] == pytest.approx([e.logprob for e in hf], abs=ENGINES_AGREE)
    for a, b in zip(vllm, hf, strict=True):
        assert [t.logprob for t in a.top_logprobs] == pytest.approx(
            [t.logprob for t in b.top_logprobs], abs=ENGINES_AGREE
        )


def test_chat_logprobs_agree(clients: dict[str, OpenAI]) -> None:
    for messages in (QUESTION, FOX):
        request: dict[str, Any] = {"model": "m", "messages": messages, "temperature": 0, "max_tokens": 8}
        vllm, hf = both(clients, chat, **request, logprobs=True, top_logprobs=5)
        assert vllm.system_fingerprint == "tunery-vllm" and hf.system_fingerprint == "tunery-hf"
        assert vllm.choices[0].message.content == hf.choices[0].message.content
        same_entries(vllm.choices[0].logprobs.content, hf.choices[0].logprobs.content)

    chunks = list(clients["vllm"].chat.completions.create(**request, logprobs=True, top_logprobs=5, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    same_entries(streamed, hf.choices[0].logprobs.content)


def test_completion_scoring_and_echo_agree(clients: dict[str, OpenAI]) -> None:
    vllm, hf = both(
        clients, lambda c: c.completions.create(model="m", prompt=PROMPTS, echo=True, max_tokens=0, logprobs=2)
    )
    assert vllm.usage.completion_tokens == hf.usage.completion_tokens == 0
    for a, b in zip(vllm.choices, hf.choices, strict=True):
        assert (a.index, a.text, a.finish_reason) == (b.index, b.text, b.finish_reason)
        assert a.logprobs.tokens == b.logprobs.tokens and a.logprobs.text_offset == b.logprobs.text_offset
        assert a.logprobs.token_logprobs[0] is None and b.logprobs.token_logprobs[0] is None
        assert a.logprobs.token_logprobs[1:] == pytest.approx(b.logprobs.token_logprobs[1:], abs=ENGINES_AGREE)
        for x, y in zip(a.logprobs.top_logprobs[1:], b.logprobs.top_logprobs[1:], strict=True):
            assert sorted(x.values()) == pytest.approx(sorted(y.values()), abs=ENGINES_AGREE)

    request: dict[str, Any] = {"model": "m", "prompt": PROMPTS[1], "echo": True, "max_tokens": 5, "logprobs": 1}
    whole = clients["hf"].completions.create(**request, temperature=0).choices[0]
    chunks = list(clients["vllm"].completions.create(**request, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.text
    streamed = joined_legacy([c.choices[0].logprobs for c in chunks])
    assert streamed["tokens"] == whole.logprobs.tokens and streamed["text_offset"] == whole.logprobs.text_offset
    assert streamed["token_logprobs"][1:] == pytest.approx(whole.logprobs.token_logprobs[1:], abs=ENGINES_AGREE)


def test_top_k_and_repetition_penalty_agree(clients: dict[str, OpenAI]) -> None:
    request: dict[str, Any] = {"model": "m", "messages": FOX, "max_tokens": 8}
    greedy = clients["hf"].chat.completions.create(**request, temperature=0).choices[0].message.content
    penalized = both(
        clients,
        lambda c: c.chat.completions.create(**request, temperature=0, extra_body={"repetition_penalty": 1.5}),
    )
    assert penalized[0].choices[0].message.content == penalized[1].choices[0].message.content != greedy
    top_1 = clients["vllm"].chat.completions.create(**request, temperature=1.0, seed=1, extra_body={"top_k": 1})
    assert top_1.choices[0].message.content == greedy


def test_prompts_are_scored_while_others_generate(clients: dict[str, OpenAI]) -> None:
    """vLLM scores a prompt alone (its prompt log-probs break with LoRA in a batch): scoring requests wait
    for the generating ones and the engine keeps serving both."""
    from concurrent.futures import ThreadPoolExecutor

    client = clients["vllm"]

    def generate(number: int) -> str:
        request: dict[str, Any] = {"model": "m", "messages": FOX, "max_tokens": 24, "temperature": 0}
        return "".join(c.choices[0].delta.content or "" for c in chat(client, **request, stream=True) if c.choices)

    def score(prompt: str) -> list[Any]:
        answer = client.completions.create(model="m", prompt=prompt, echo=True, max_tokens=0, logprobs=0)
        return list(answer.choices[0].logprobs.token_logprobs)

    with ThreadPoolExecutor(6) as pool:
        generated = [pool.submit(generate, number) for number in range(3)]
        scored = [pool.submit(score, prompt) for prompt in PROMPTS * 2]
        texts = {future.result(timeout=600) for future in generated}
        scores = [future.result(timeout=600) for future in scored]
    assert len(texts) == 1 and next(iter(texts))
    assert scores[0] == pytest.approx(scores[2], nan_ok=True) and scores[1] == pytest.approx(scores[3], nan_ok=True)
