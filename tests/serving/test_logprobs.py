"""Log-probs on `/v1` with the transformers engine, through the openai SDK against `tunery api`'s app:
chat `logprobs` + `top_logprobs`, completions `logprobs` (legacy shape) with `echo` and `max_tokens: 0`,
streamed and whole, compared with log-probs computed directly from the model; and the generation keys
`top_k`, `repetition_penalty` (job file and per request), `num_beams`, `infer_dtype` of `tunery api`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from openai import OpenAI
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.serving.logprob_support import (
    PROMPTS,
    QUESTION,
    TOLERANCE,
    chat_prompt_ids,
    check_chat_content,
    content_ids,
    greedy,
    job_file,
    joined_legacy,
    reference,
    served,
)
from tunery.serving.cli import engine_config
from tunery.serving.engines.sampling import apply_repetition_penalty, top_k_filter
from tunery.serving.logprobs import TokenTexts, _byte_decoder
from tunery.serving.manager import EngineManager
from tunery.serving.standalone import served_model
from tunery.spec import load_spec


@pytest.fixture(scope="module")
def client(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    with served(job_file(tmp_path_factory.mktemp("logprobs"), tiny_llama), "hf") as openai_client:
        yield openai_client


@pytest.fixture(scope="module")
def model(tiny_llama: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_llama)


def test_chat_logprobs_are_the_models_whole_and_streamed(client: OpenAI, model: Any, tokenizer: Any) -> None:
    request: dict[str, Any] = {"model": "m", "messages": QUESTION, "temperature": 0, "max_tokens": 8}
    answer = client.chat.completions.create(**request, logprobs=True, top_logprobs=5)
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    content = choice.logprobs.content
    prompt = chat_prompt_ids(tokenizer, QUESTION)
    generated = content_ids(tokenizer, content)
    assert generated == greedy(model, prompt, 8)[: len(generated)] and len(generated) == 8
    assert "".join(entry.token for entry in content) == choice.message.content
    check_chat_content(content, tokenizer, reference(model, prompt + generated), len(prompt) - 1, 5)

    chunks = list(client.chat.completions.create(**request, logprobs=True, top_logprobs=5, stream=True))
    streamed = [entry for c in chunks if c.choices and c.choices[0].logprobs for entry in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in content], abs=1e-5)
    assert all(len(e.top_logprobs) == 5 for e in streamed)

    plain = client.chat.completions.create(**request)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == choice.message.content
    no_top = client.chat.completions.create(**request, logprobs=True)
    assert no_top.choices[0].logprobs is not None
    assert [e.top_logprobs for e in no_top.choices[0].logprobs.content or []] == [[]] * 8


def test_sampled_answers_report_raw_logprobs(client: OpenAI, model: Any, tokenizer: Any) -> None:
    """Log-probs are the model's before temperature, penalties, top-k and top-p (vLLM's raw_logprobs), while
    the tokens are sampled with all of them (top_k and repetition_penalty as vLLM's extra fields)."""
    answer = client.chat.completions.create(
        model="m", messages=QUESTION, max_tokens=6, temperature=1.7, top_p=0.95, seed=3, n=2,
        logprobs=True, extra_body={"top_k": 5, "repetition_penalty": 1.3},
    )  # fmt: skip
    prompt = chat_prompt_ids(tokenizer, QUESTION)
    answers = []
    for choice in answer.choices:
        assert choice.logprobs is not None and choice.logprobs.content is not None
        generated = content_ids(tokenizer, choice.logprobs.content)
        answers.append(generated)
        logprobs = reference(model, prompt + generated)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prompt + generated])).logits[0]
        for number, (entry, token) in enumerate(zip(choice.logprobs.content, generated, strict=True)):
            position = len(prompt) - 1 + number
            assert abs(entry.logprob - float(logprobs[position, token])) < TOLERANCE
            # sampled among the 5 best after the repetition penalty (transformers' own processor)
            seen = torch.tensor([prompt + generated[:number]])
            penalized = _hf_repetition(1.3)(seen, logits[position : position + 1].float())[0]
            assert token in torch.topk(penalized, 5).indices.tolist()
    assert answers[0] != answers[1]


def _hf_repetition(penalty: float) -> Any:
    from transformers import RepetitionPenaltyLogitsProcessor

    return RepetitionPenaltyLogitsProcessor(penalty)


def test_completion_logprobs_echo_and_scoring_only(client: OpenAI, model: Any, tokenizer: Any) -> None:
    scored = client.completions.create(model="m", prompt=PROMPTS, echo=True, max_tokens=0, logprobs=2)
    assert [c.index for c in scored.choices] == [0, 1]
    assert scored.usage is not None and scored.usage.completion_tokens == 0
    for prompt, choice in zip(PROMPTS, scored.choices, strict=True):
        ids = tokenizer(prompt)["input_ids"]
        assert choice.text == prompt and choice.finish_reason == "length"
        legacy = choice.logprobs
        assert legacy is not None and legacy.tokens is not None and legacy.token_logprobs is not None
        assert legacy.top_logprobs is not None and legacy.text_offset is not None
        assert legacy.tokens == [tokenizer.decode([token]) for token in ids] and "".join(legacy.tokens) == prompt
        assert legacy.token_logprobs[0] is None and legacy.top_logprobs[0] is None
        logprobs = reference(model, ids)
        expected = [float(logprobs[p - 1, ids[p]]) for p in range(1, len(ids))]
        assert legacy.token_logprobs[1:] == pytest.approx(expected, abs=TOLERANCE)
        for position, alternatives in enumerate(legacy.top_logprobs[1:], start=1):
            assert 2 <= len(alternatives) <= 3 and alternatives[legacy.tokens[position]] == pytest.approx(
                legacy.token_logprobs[position]
            )
            assert max(alternatives.values()) == pytest.approx(float(logprobs[position - 1].max()), abs=TOLERANCE)
        assert legacy.text_offset == [sum(len(t) for t in legacy.tokens[:i]) for i in range(len(ids))]

    # echo with an answer: the prompt's log-probs, then the answer's; streamed in chunks of their tokens
    request: dict[str, Any] = {"model": "m", "prompt": PROMPTS[0], "echo": True, "max_tokens": 4, "logprobs": 1}
    whole = client.completions.create(**request, temperature=0).choices[0]
    ids = tokenizer(PROMPTS[0])["input_ids"]
    generated = greedy(model, ids, 4)
    assert whole.text == PROMPTS[0] + tokenizer.decode(generated)
    assert whole.logprobs is not None and whole.logprobs.token_logprobs is not None
    logprobs = reference(model, ids + generated)
    full = ids + generated
    expected = [None] + [float(logprobs[p - 1, full[p]]) for p in range(1, len(full))]
    assert whole.logprobs.token_logprobs[0] is None
    assert whole.logprobs.token_logprobs[1:] == pytest.approx(expected[1:], abs=TOLERANCE)
    chunks = list(client.completions.create(**request, temperature=0, stream=True))
    assert chunks[0].choices[0].text == PROMPTS[0]
    assert "".join(c.choices[0].text for c in chunks) == whole.text
    streamed = joined_legacy([c.choices[0].logprobs for c in chunks])
    assert streamed["tokens"] == whole.logprobs.tokens and streamed["text_offset"] == whole.logprobs.text_offset
    assert streamed["token_logprobs"][1:] == pytest.approx(whole.logprobs.token_logprobs[1:], abs=1e-5)

    # no echo: only the answer's tokens, offsets counted in the answer
    answer = client.completions.create(model="m", prompt=PROMPTS[0], max_tokens=4, logprobs=0, temperature=0)
    legacy = answer.choices[0].logprobs
    assert legacy is not None and legacy.token_logprobs == pytest.approx(expected[len(ids) :], abs=TOLERANCE)
    assert legacy.text_offset is not None and legacy.text_offset[0] == 0
    assert all(len(alternatives) == 1 for alternatives in legacy.top_logprobs or [])
    echo_only = client.completions.create(model="m", prompt=PROMPTS[0], echo=True, max_tokens=0)
    assert echo_only.choices[0].text == PROMPTS[0] and echo_only.choices[0].logprobs is None


def test_out_of_range_values_are_400s_naming_the_param(client: OpenAI) -> None:
    chat = {"model": "m", "messages": QUESTION, "max_tokens": 2}
    cases: list[tuple[str, Any]] = [
        ("top_logprobs", lambda: client.chat.completions.create(**chat, logprobs=True, top_logprobs=21)),
        ("top_logprobs", lambda: client.chat.completions.create(**chat, top_logprobs=2)),
        ("logprobs", lambda: client.completions.create(model="m", prompt="Hi", logprobs=6)),
        ("max_tokens", lambda: client.completions.create(model="m", prompt="Hi", max_tokens=0)),
        ("top_k", lambda: client.chat.completions.create(**chat, extra_body={"top_k": -2})),
        ("repetition_penalty", lambda: client.chat.completions.create(**chat, extra_body={"repetition_penalty": 0})),
    ]
    for param, call in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            call()
        assert refused.value.param == param, refused.value.message
        assert refused.value.type == "invalid_request_error"


def test_top_k_and_repetition_penalty_per_request(client: OpenAI, model: Any, tokenizer: Any) -> None:
    messages = [{"role": "user", "content": "Tell me about the quick brown fox."}]  # a greedy answer that repeats
    request: dict[str, Any] = {"model": "m", "messages": messages, "max_tokens": 8, "logprobs": True}
    prompt = chat_prompt_ids(tokenizer, messages)

    def tokens(**extra: Any) -> list[int]:
        answer = client.chat.completions.create(**request, **extra)
        assert answer.choices[0].logprobs is not None
        return content_ids(tokenizer, answer.choices[0].logprobs.content or [])

    plain, penalized = greedy(model, prompt, 8), greedy(model, prompt, 8, repetition_penalty=1.5)
    assert plain != penalized  # the penalty changes this answer
    assert tokens(temperature=0, extra_body={"repetition_penalty": 1.5}) == penalized
    assert tokens(temperature=1.0, seed=1, extra_body={"top_k": 1}) == plain


def test_sampling_filters_match_transformers() -> None:
    from transformers import TopKLogitsWarper

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, generator=generator)
    seen = [3, 5, 5, 9, 40]
    expected = _hf_repetition(1.7)(torch.tensor([seen]), logits[None].clone())[0]
    assert torch.allclose(apply_repetition_penalty(logits, seen, 1.7), expected)
    assert torch.equal(top_k_filter(logits, 7), TopKLogitsWarper(7)(torch.tensor([[0]]), logits[None].clone())[0])
    assert torch.equal(top_k_filter(logits, 0), logits)


def test_token_bytes(tokenizer: Any) -> None:
    """A token that is part of a character has its own bytes (its text is the replacement character)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = {char: byte for byte, char in bytes_to_unicode().items()}
    assert _byte_decoder() == table
    texts = TokenTexts(tokenizer)
    partial = next(i for i in range(tokenizer.vocab_size) if "\ufffd" in tokenizer.decode([i]))
    text, raw = texts.get(partial)
    assert text == tokenizer.decode([partial])
    assert raw == [table[char] for char in tokenizer.convert_ids_to_tokens(partial)]
    with pytest.raises(UnicodeDecodeError):
        bytes(raw).decode("utf-8")
    whole = tokenizer("The")["input_ids"][0]
    assert texts.get(whole) == ("The", list(b"The"))


def test_gate_lets_one_alone_after_the_others_left() -> None:
    from tunery.serving.engines.gate import Gate

    async def scenario() -> list[str]:
        gate, order = Gate(), []
        await gate.enter()

        async def alone() -> None:
            async with gate.alone():
                order.append("alone")
                await asyncio.sleep(0.01)
            order.append("alone done")

        async def later() -> None:
            await gate.enter()
            order.append("later")
            await gate.leave()

        waiting = asyncio.create_task(alone())
        await asyncio.sleep(0.01)
        behind = asyncio.create_task(later())  # arrives while one waits to be alone: goes after it
        await asyncio.sleep(0.01)
        order.append("first leaves")
        await gate.leave()
        await asyncio.gather(waiting, behind)
        return order

    assert asyncio.run(scenario()) == ["first leaves", "alone", "alone done", "later"]


def test_job_file_generation_keys(tiny_llama: Path, tmp_path: Path) -> None:
    job = job_file(tmp_path, tiny_llama, "infer_dtype: bfloat16")
    keys = ["do_train=false", "do_sample=true", "top_k=7", "repetition_penalty=1.3"]
    sampled = served_model(load_spec(job, keys), None)
    assert (sampled.defaults.top_k, sampled.defaults.repetition_penalty) == (7, 1.3)
    assert served_model(load_spec(job, ["do_train=false"]), None).defaults.top_k == 0  # greedy: top_k moot
    with pytest.raises(ValueError, match="num_beams"):
        served_model(load_spec(job, ["do_train=false", "num_beams=2"]), None)

    config = engine_config(sampled)
    assert config.dtype == "bfloat16"
    manager = EngineManager(type(config)(**{**config.__dict__, "engine": "hf"}))

    async def loaded_dtype() -> Any:
        try:
            async with manager.lease(sampled.target) as lease:
                return lease.engine.model.dtype  # type: ignore[attr-defined]
        finally:
            await manager.shutdown()

    assert asyncio.run(loaded_dtype()) == torch.bfloat16
