"""Running one request on an engine and turning its tokens into text per choice: sampling parameters from
the request, detokenization, stop strings, usage counting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tunery.engine.templates import ChatTemplate
from tunery.serving.decoding import Detokenizer, StopChecker, control_token_ids, single_token_ids
from tunery.serving.errors import OpenAIError
from tunery.serving.manager import Lease
from tunery.serving.schemas import SamplingFields
from tunery.serving.types import EngineError, GenerationRequest, SamplingParams, TokenLogprob


@dataclass(frozen=True)
class Defaults:
    """Sampling values used when a request does not set them (OpenAI's unless a job file says otherwise)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    top_k: int = 0  # 0: off
    repetition_penalty: float = 1.0


class ChoiceEvent(NamedTuple):
    """New text of one choice (index over the whole response), its finish reason once finished, and the
    log-probs of the tokens that arrived with it (empty unless asked for)."""

    choice: int
    text: str
    finish_reason: str | None
    logprobs: list[TokenLogprob]


def stop_words(template: ChatTemplate, tokenizer: Any) -> tuple[set[int], tuple[str, ...]]:
    """The template's stop words as token ids (single tokens) and texts (the rest), eos included."""
    words = [word for word in template.stop_words if word]
    ids = single_token_ids(tokenizer, words)
    if isinstance(tokenizer.eos_token_id, int):
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    return ids, tuple(word for word in words if word not in vocab)


def sampling_params(
    request: SamplingFields,
    max_tokens: int | None,
    prompt_len: int,
    context: int,
    lease: Lease,
    defaults: Defaults,
    logprobs: int | None = None,
    prompt_logprobs: bool = False,
) -> SamplingParams:
    """The engine's sampling parameters: the request's values, else ``defaults``; ``logprobs`` alternatives
    per generated token when log-probs are asked for, ``prompt_logprobs`` for the prompt's too.
    ``max_tokens`` 0 scores the prompt only (the prompt may then fill the whole context)."""
    if prompt_len > context or (prompt_len == context and max_tokens != 0):
        raise OpenAIError(
            400,
            f"This model's maximum context length is {context} tokens; the prompt has {prompt_len}.",
            param="messages",
            code="context_length_exceeded",
        )
    if max_tokens is not None and prompt_len + max_tokens > context:
        raise OpenAIError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} in the completion).",
            param="max_tokens",
            code="context_length_exceeded",
        )
    stop_ids, stop_texts = stop_words(lease.template, lease.tokenizer)
    top_k = request.top_k if request.top_k is not None else defaults.top_k
    repetition = request.repetition_penalty
    return SamplingParams(
        max_tokens=max_tokens if max_tokens is not None else min(defaults.max_tokens, context - prompt_len),
        temperature=request.temperature if request.temperature is not None else defaults.temperature,
        top_p=request.top_p if request.top_p is not None else defaults.top_p,
        seed=request.seed,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        stop_token_ids=tuple(sorted(stop_ids)),
        stop=tuple(dict.fromkeys([*stop_texts, *request.stop_list()])),
        top_k=max(0, top_k),
        repetition_penalty=repetition if repetition is not None else defaults.repetition_penalty,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs and logprobs is not None,
    )


@dataclass
class ChoiceText:
    """Text of one choice as tokens arrive: decoded, cut at stop strings."""

    detokenizer: Detokenizer
    stops: StopChecker
    tokens: int = 0
    finish_reason: str | None = None
    text: str = ""
    #: log-probs of the tokens received so far (when asked for)
    logprobs: list[TokenLogprob] = field(default_factory=list)

    def add(self, token_ids: list[int], generated: int, finish: str | None) -> str:
        self.tokens += generated
        out, stopped = self.stops.feed(self.detokenizer.add(token_ids))
        if stopped:
            self.finish_reason = "stop"
        elif finish is not None:
            tail, _ = self.stops.feed(self.detokenizer.flush())
            out += tail + self.stops.finish()
            self.finish_reason = "stop" if self.stops.stopped else finish
        self.text += out
        return out


@dataclass
class Run:
    """One generation: its choices' text and log-probs, fed by :meth:`stream`."""

    lease: Lease
    request: GenerationRequest
    offset: int = 0  # index of the first choice (several completion prompts share one response)
    choices: list[ChoiceText] = field(default_factory=list)
    #: the prompt's log-probs (first token None) once the engine scored it (echo with log-probs)
    prompt_logprobs: list[TokenLogprob | None] | None = None

    def __post_init__(self) -> None:
        hidden = control_token_ids(self.lease.tokenizer, self.lease.template.stop_words)
        for _ in range(self.request.n):
            self.choices.append(
                ChoiceText(Detokenizer(self.lease.tokenizer, hidden), StopChecker(self.request.params.stop))
            )

    async def events(self) -> AsyncIterator[tuple[int, str, str | None]]:
        """(choice index, new text, finish reason or None) until every choice finished."""
        async for event in self.stream():
            yield event.choice, event.text, event.finish_reason

    async def stream(self) -> AsyncIterator[ChoiceEvent]:
        """Each choice's new text and log-probs as tokens arrive, until every choice finished."""
        params = self.request.params
        if params.max_tokens == 0 and not params.prompt_logprobs:  # nothing to generate nor to score
            for number, choice in enumerate(self.choices):
                choice.finish_reason = "length"
                yield ChoiceEvent(self.offset + number, "", "length", [])
            return
        try:
            generation = self.lease.engine.generate(self.request)
        except EngineError as exc:
            raise OpenAIError(503, str(exc), code="engine_unavailable") from exc
        try:
            async for delta in generation:
                if delta.prompt_logprobs is not None and self.prompt_logprobs is None:
                    self.prompt_logprobs = delta.prompt_logprobs
                choice = self.choices[delta.index]
                if choice.finish_reason is not None:
                    continue
                text = choice.add(delta.token_ids, delta.generated, delta.finish_reason)
                logprobs = delta.logprobs or []
                choice.logprobs.extend(logprobs)
                if choice.finish_reason is not None and delta.finish_reason is None:
                    generation.cancel(delta.index)
                yield ChoiceEvent(self.offset + delta.index, text, choice.finish_reason, logprobs)
                if all(c.finish_reason is not None for c in self.choices):
                    break
        except EngineError as exc:
            raise OpenAIError(500, str(exc), code="engine_error") from exc
        finally:
            await generation.aclose()

    @property
    def completion_tokens(self) -> int:
        return sum(choice.tokens for choice in self.choices)


async def merged(runs: Sequence[Run]) -> AsyncIterator[ChoiceEvent]:
    """The events of several runs as they come."""
    if len(runs) == 1:
        async for item in runs[0].stream():
            yield item
        return
    queue: asyncio.Queue[ChoiceEvent | BaseException | None] = asyncio.Queue()

    async def pump(run: Run) -> None:
        try:
            async for item in run.stream():
                await queue.put(item)
        except BaseException as exc:
            await queue.put(exc)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(run)) for run in runs]
    open_runs = len(tasks)
    try:
        while open_runs:
            got = await queue.get()
            if got is None:
                open_runs -= 1
            elif isinstance(got, BaseException):
                raise got
            else:
                yield got
    finally:
        for task in tasks:
            task.cancel()


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
