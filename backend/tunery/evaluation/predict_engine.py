"""Generation settings of a prediction run, and generating on the vLLM engine (``infer_backend: vllm``; the
transformers engine's continuous batching is driven by ``predict_hf``).

Rows go to the engine as token ids and answers come back as token ids (the stop token not included).
The transformers engine decodes ``per_device_eval_batch_size`` rows at once and refills its batch as soon
as a sequence ends. vLLM gets all rows at once, 32 prompts per request, and schedules them itself (up to
256 sequences, or ``per_device_eval_batch_size`` if larger), as LLaMA-Factory's ``scripts/vllm_infer.py``
hands vLLM whole batches. Sampling follows the generation section as LLaMA-Factory's ``model.generate``
call does: ``do_sample: false`` decodes greedily, otherwise temperature, top-p and top-k sampling, seeded
so that a row's answer does not depend on the rows it is batched with (``seed + row index`` on the
transformers engine, ``seed`` per prompt on vLLM); ``repetition_penalty`` applies either way. Generation
stops at the tokenizer's eos, the template's stop words and the tokenizer's extra special tokens (LF's
``eos_token_id`` list), at ``max_new_tokens``, or at the model's context length.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunery.serving.engines.base import EngineOptions
from tunery.serving.types import EngineError, GenerationRequest, SamplingParams

if TYPE_CHECKING:
    from tunery.engine.templates.base import ChatTemplate
    from tunery.evaluation.predict_data import PredictRow
    from tunery.spec import JobSpec

ADAPTER_NAME = "predict"
#: LoRA ranks vLLM accepts for --max-lora-rank
_VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
#: seconds between two progress reports (and cancel checks) while rows are generated
POLL_SECONDS = 0.5
#: prompts per vLLM request, and the fewest sequences vLLM may schedule at once
VLLM_PROMPTS = 32
VLLM_MIN_BATCH = 256


def engine_name(spec: JobSpec) -> str:
    return "vllm" if spec.model.infer_backend == "vllm" else "hf"


def adapter_rank(path: str) -> int:
    try:
        config = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return int(config.get("r") or 0)


def engine_options(spec: JobSpec, model_path: str, adapter_path: str | None) -> EngineOptions:
    rank = adapter_rank(adapter_path) if adapter_path else 0
    batch = spec.training.per_device_eval_batch_size
    return EngineOptions(
        model_path=model_path,
        dtype=spec.model.infer_dtype,
        max_batch=max(batch, VLLM_MIN_BATCH) if engine_name(spec) == "vllm" else batch,
        max_adapters=1 if adapter_path else 0,
        max_lora_rank=next((r for r in _VLLM_RANKS if r >= rank), max(rank, 8)),
    )


def stop_token_ids(tokenizer: Any, template: ChatTemplate) -> set[int]:
    """LF's ``eos_token_id`` list for generation: eos, the template's stop words (LF adds them as special
    tokens) and the tokenizer's extra special tokens."""
    ids: set[int] = set()
    if isinstance(tokenizer.eos_token_id, int):
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[word] for word in template.stop_words if word and word in vocab)
    extra = getattr(tokenizer, "additional_special_tokens_ids", None)
    if not isinstance(extra, list):
        tokens = [str(token) for token in getattr(tokenizer, "_extra_special_tokens", None) or []]
        extra = tokenizer.convert_tokens_to_ids(tokens) if tokens else []
    ids.update(int(i) for i in extra if isinstance(i, int) and i >= 0)
    return ids


def sampling_for(spec: JobSpec, stops: set[int], row: PredictRow, context: int, seed_per_row: bool) -> SamplingParams:
    """The row's sampling settings; sampling is seeded with ``seed`` (+ the row index when ``seed_per_row``)."""
    generation = spec.generation
    sample = generation.do_sample
    return SamplingParams(
        max_tokens=max(1, min(generation.max_new_tokens, context - len(row.prompt_ids))),
        temperature=generation.temperature if sample else 0.0,
        top_p=generation.top_p if sample else 1.0,
        top_k=generation.top_k if sample else 0,
        repetition_penalty=generation.repetition_penalty,
        seed=(spec.training.seed + (row.index if seed_per_row else 0)) if sample else None,
        stop_token_ids=tuple(sorted(stops)),
    )


Report = Callable[[int], None]
OnAnswer = Callable[[int, list[int]], None]


async def _drive(tasks: Iterator[Awaitable[int]], window: int, report: Report) -> None:
    """Run ``tasks`` (each returns the rows it finished), at most ``window`` at once. ``report(done)`` is
    called from this coroutine every :data:`POLL_SECONDS` and when tasks finish; whatever it raises (a
    cancel) stops the run and cancels the tasks in flight."""
    running: set[asyncio.Task[int]] = set()
    done = 0
    try:
        while True:
            while len(running) < window and (task := next(tasks, None)) is not None:
                running.add(asyncio.ensure_future(task))
            if not running:
                return
            finished, running = await asyncio.wait(running, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            for item in finished:
                done += item.result()  # an engine error fails the run
            report(done)
    finally:
        for item in running:
            item.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def generate_rows_vllm(
    engine: Any, requests: Sequence[GenerationRequest], report: Report, on_answer: OnAnswer
) -> None:
    """Rows to vLLM's completions endpoint :data:`VLLM_PROMPTS` prompts per request, all requests at once
    (vLLM's scheduler batches them; one HTTP round trip per row costs more than generating with a small
    model). Consecutive rows with the same sampling settings share a request."""
    from tunery.serving.engines.vllm import SERVED_NAME

    client = engine.client()
    eos: set[int] = set(getattr(engine, "eos_ids", set()))

    async def one(group: list[int]) -> int:
        first = requests[group[0]]
        params = first.params
        body: dict[str, Any] = {
            "model": first.adapter or SERVED_NAME,
            "prompt": [requests[index].prompt_ids for index in group],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k if params.top_k > 0 else -1,
            "repetition_penalty": params.repetition_penalty,
            "stop_token_ids": list(params.stop_token_ids),
            "skip_special_tokens": False,
            "return_token_ids": True,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        response = await client.post("/v1/completions", json=body)
        if response.status_code != 200:
            raise EngineError(f"vLLM answered {response.status_code}: {response.text[:500]}")
        stops = set(params.stop_token_ids) | eos
        for choice in response.json()["choices"]:
            ids = list(choice.get("token_ids") or [])
            stopped = choice.get("finish_reason") == "stop"
            if stopped and ids and (ids[-1] in stops or isinstance(choice.get("stop_reason"), int)):
                ids = ids[:-1]  # the stop token is not part of the answer
            on_answer(group[int(choice["index"])], ids)
        return len(group)

    groups: list[list[int]] = []
    for index, request in enumerate(requests):
        last = groups[-1] if groups else None
        if last and len(last) < VLLM_PROMPTS and requests[last[0]].params == request.params:
            last.append(index)
        else:
            groups.append([index])
    await _drive((one(group) for group in groups), len(groups), report)
