"""Reward-model scoring (``/v1/score``): reward models loaded with the engine's loader
(``tunery.engine.train.reward_model.load_reward_model``) in this process, next to the generation engines.

One loaded model per (folder, base model); loading and scoring run in a worker thread, one batch of at most
``max_batch`` texts at a time per model; a model without requests for ``idle_seconds`` is unloaded, as idle
engines are stopped. Torch is imported only when a reward model is first loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from tunery.serving.config import ServingConfig
from tunery.serving.errors import OpenAIError
from tunery.serving.schemas import ScoreData, ScoreRequest, ScoreResponse, ScoreUsage
from tunery.serving.types import EngineError, ServeTarget

Key = tuple[str, str | None]  # (the folder loaded, the base model of an adapter)


@dataclass
class LoadedScorer:
    scorer: Any  # tunery.engine.train.reward_model.RewardScorer
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one batch at a time: the model is not shared
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)


def key_of(target: ServeTarget) -> Key:
    """A trained LoRA reward model is its adapter folder on the job's base model; else the model folder."""
    if target.adapter_path is not None:
        return target.adapter_path, target.base_path
    return target.base_path, None


def _load(key: Key, config: ServingConfig) -> LoadedScorer:
    from tunery.engine.train.reward_model import RewardModelError, load_reward_model

    path, base_model = key
    torch_dtype: Any = None  # the loader's default: float32
    if config.dtype != "auto":
        import torch

        torch_dtype = getattr(torch, config.dtype)
    try:
        scorer = load_reward_model(path, base_model=base_model, dtype=torch_dtype, batch_size=config.max_batch)
    except RewardModelError as exc:  # the folder is not a reward model: the caller chose the wrong model
        raise OpenAIError(400, str(exc), param="model", code="not_a_reward_model") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineError(f"cannot load the reward model {path}: {exc}") from exc
    return LoadedScorer(scorer)


def _score(scorer: Any, prompts: list[str] | None, responses: list[str], first: int) -> tuple[list[float], int]:
    """(scores, tokens scored): each text encoded as the scorer renders it (template for pairs), then scored;
    ``first`` is the request index of ``responses[0]``, for errors."""
    from tunery.engine.train.reward_model import RewardModelError

    asked: list[str | None] = list(prompts) if prompts is not None else [None] * len(responses)
    sequences = [scorer.encode(prompt, response) for prompt, response in zip(asked, responses, strict=True)]
    param = "input" if prompts is None else "pairs"
    limit = getattr(scorer.model.config, "max_position_embeddings", None)
    for offset, ids in enumerate(sequences):
        if not ids:
            raise OpenAIError(400, f"{param}[{first + offset}] is empty: nothing to score", param=param)
        if isinstance(limit, int) and len(ids) > limit:
            raise OpenAIError(
                400,
                f"{param}[{first + offset}] is {len(ids)} tokens; the reward model reads at most {limit}",
                param=param,
                code="context_length_exceeded",
            )
    try:
        scores = scorer.score_ids(sequences)
    except RewardModelError as exc:
        raise OpenAIError(400, str(exc), param=param) from exc
    return [float(value) for value in scores], sum(len(ids) for ids in sequences)


class RewardScorers:
    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.loaded: dict[Key, asyncio.Task[LoadedScorer]] = {}

    async def _get(self, key: Key) -> LoadedScorer:
        task = self.loaded.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(_load, key, self.config))
            self.loaded[key] = task
        return await asyncio.shield(task)  # a client that goes away does not cancel a load others wait for

    async def score(
        self, target: ServeTarget, prompts: list[str] | None, responses: list[str]
    ) -> tuple[list[float], int]:
        """(a score per response, tokens read); prompts None: each response is scored as the text it is."""
        loaded = await self._get(key_of(target))
        loaded.active += 1
        try:
            scores: list[float] = []
            tokens = 0
            batch = max(1, self.config.max_batch)
            for start in range(0, len(responses), batch):  # other requests get the model between batches
                part = responses[start : start + batch]
                asked = prompts[start : start + batch] if prompts is not None else None
                async with loaded.lock:
                    values, count = await asyncio.to_thread(_score, loaded.scorer, asked, part, start)
                scores += values
                tokens += count
            return scores, tokens
        finally:
            loaded.active -= 1
            loaded.last_used = time.monotonic()

    async def reap_idle(self) -> list[str]:
        """Unload reward models that scored nothing for ``idle_seconds``; returns their folders."""
        now = time.monotonic()
        idle = []
        for key, task in list(self.loaded.items()):
            if not task.done():
                continue
            loaded = None if task.cancelled() or task.exception() is not None else task.result()
            if loaded is None or (loaded.active == 0 and now - loaded.last_used >= self.config.idle_seconds):
                del self.loaded[key]
                idle.append(key[0])
        return idle

    async def shutdown(self) -> None:
        for task in self.loaded.values():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.loaded.clear()


async def serve_score(scorers: RewardScorers, target: ServeTarget, body: ScoreRequest) -> ScoreResponse:
    """``/v1/score``: one score per text or pair, in request order; 400 for a model that is not a reward model."""
    if not target.reward:
        raise OpenAIError(
            400,
            f"The model '{target.model_id}' is not a reward model; /v1/score takes a model trained with stage rm "
            "or a registered sequence-classification model (GET /v1/models marks them reward_model: true).",
            param="model",
            code="not_a_reward_model",
        )
    if body.pairs is not None:
        prompts: list[str] | None = [pair.prompt for pair in body.pairs]
        responses = [pair.response for pair in body.pairs]
    else:
        prompts, responses = None, list(body.input or [])
    scores, tokens = await scorers.score(target, prompts, responses)
    return ScoreResponse(
        model=target.model_id,
        data=[ScoreData(index=index, score=value) for index, value in enumerate(scores)],
        usage=ScoreUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
