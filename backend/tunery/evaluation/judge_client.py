"""Talking to the judge: any OpenAI-compatible endpoint through the ``openai`` SDK's async client.

At most ``judge_max_concurrency`` requests are in flight; the SDK retries transient failures (connection errors,
408/409/429/5xx) with backoff. Optional request fields an endpoint refuses (log-probs, ``max_tokens``,
``temperature``) are dropped for the rest of the run. A wrong key, model or URL stops the run with a message
naming the spec key; any other failure is that sample's. The API key is read from the environment variable
``judge_api_key_env`` names; it never appears in a message, event or file (error texts are scrubbed).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from tunery.engine.train.errors import TrainingError, invalid_spec
from tunery.spec import JobSpec

#: alternatives per token asked for (OpenAI's maximum); enough to cover the score tokens 1-10
TOP_LOGPROBS = 20
MAX_RETRIES = 4
TIMEOUT_S = 300.0
#: the placeholder key sent to endpoints without authentication (judge_api_key_env unset)
NO_KEY = "none"


@dataclass(frozen=True)
class JudgeSettings:
    model: str
    base_url: str | None
    max_concurrency: int
    api_key: str = field(repr=False)

    @classmethod
    def from_spec(cls, spec: JobSpec) -> JudgeSettings:
        evaluation = spec.evaluation
        if not evaluation.judge_model:
            raise invalid_spec("judge_model", "is required to judge (the model id on judge_base_url)")
        key = NO_KEY
        if evaluation.judge_api_key_env:
            name = evaluation.judge_api_key_env
            value = os.environ.get(name, "")
            if not value.strip():
                raise invalid_spec(
                    "judge_api_key_env", f"the environment variable {name} (the judge's API key) is not set or empty"
                )
            key = value.strip()
        return cls(evaluation.judge_model, evaluation.judge_base_url, evaluation.judge_max_concurrency, key)


@dataclass(frozen=True)
class Reply:
    """One answer of the judge: its text and token log-probs, or why there is none."""

    content: str | None
    logprobs: list[dict[str, Any]] | None = None
    error: str | None = None


class JudgeClient:
    """Chat completions against the judge, ``max_concurrency`` at a time."""

    def __init__(self, settings: JudgeSettings, *, max_tokens: int = 512) -> None:
        from openai import AsyncOpenAI

        self.settings = settings
        self.client = AsyncOpenAI(
            api_key=settings.api_key, base_url=settings.base_url, max_retries=MAX_RETRIES, timeout=TIMEOUT_S
        )
        self.semaphore = asyncio.Semaphore(settings.max_concurrency)
        self.options: dict[str, Any] = {
            "temperature": 0.0,
            "max_tokens": max_tokens,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        self.answered = False

    @property
    def where(self) -> str:
        return self.settings.base_url or "the OpenAI API"

    async def close(self) -> None:
        await self.client.close()

    async def ask(self, prompt: str) -> Reply:
        async with self.semaphore:
            return await self._ask(prompt)

    async def _ask(self, prompt: str) -> Reply:
        import openai

        for _ in range(4):  # at most one retry per optional field dropped
            options = dict(self.options)
            try:
                response = await self.client.chat.completions.create(
                    model=self.settings.model, messages=[{"role": "user", "content": prompt}], **options
                )
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if self._drop_refused_option(exc, options):
                    continue
                return Reply(None, error=self.scrub(f"the judge refused the request ({exc.status_code}): {exc}"))
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise invalid_spec(
                    "judge_api_key_env", self.scrub(f"{self.where} refused the API key ({exc.status_code}): {exc}")
                ) from None
            except openai.NotFoundError as exc:
                raise invalid_spec(
                    "judge_model",
                    self.scrub(f"{self.where} has no model {self.settings.model!r} (or no /chat/completions): {exc}"),
                ) from None
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                if not self.answered:
                    raise TrainingError(
                        "invalid_spec", self.scrub(f"judge_base_url: cannot reach the judge at {self.where}: {exc}")
                    ) from None
                return Reply(None, error=self.scrub(f"the judge did not answer: {exc}"))
            except openai.APIError as exc:
                return Reply(None, error=self.scrub(f"the judge failed: {exc}"))
            self.answered = True
            return self._reply(response)
        return Reply(None, error="the judge refused every form of the request")

    def _drop_refused_option(self, exc: Exception, sent: dict[str, Any]) -> bool:
        """Drop (for the rest of the run) an optional field the endpoint says it does not take."""
        text = f"{getattr(exc, 'param', '') or ''} {exc}".lower()
        if "logprobs" in sent and "logprob" in text:
            for name in ("logprobs", "top_logprobs"):
                self.options.pop(name, None)
            return True
        if "max_tokens" in sent and "max_tokens" in text and "max_completion_tokens" in text:
            self.options["max_completion_tokens"] = self.options.pop("max_tokens")
            return True
        if "temperature" in sent and "temperature" in text:
            self.options.pop("temperature", None)
            return True
        return False

    @staticmethod
    def _reply(response: Any) -> Reply:
        if not getattr(response, "choices", None):
            return Reply(None, error="the judge's response has no choices")
        choice = response.choices[0]
        content = choice.message.content if choice.message is not None else None
        logprobs = None
        if choice.logprobs is not None and choice.logprobs.content:
            logprobs = [entry.model_dump() for entry in choice.logprobs.content]
        return Reply(content, logprobs)

    def scrub(self, text: str) -> str:
        """``text`` without the API key (an endpoint may echo it in an error)."""
        key = self.settings.api_key
        return text.replace(key, "***") if key and key != NO_KEY else text
