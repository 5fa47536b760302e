"""Scoring generated answers with the job's reward model (``reward_model`` / ``reward_model_type``): a model
trained with stage rm (contract: ``tunery.engine.train.reward_model``), or an OpenAI-style ``/v1/score`` API.

The API contract (shared with Tunery's own ``/v1/score``)::

    POST <url>  {"model": str, "input": [str] | null, "pairs": [{"prompt": str, "response": str}] | null}
    200         {"object": "list", "data": [{"index": int, "score": float}, ...]}

PPO sends ``input``: each prompt and answer decoded together as one text, special tokens kept (as
LLaMA-Factory does), so the server scores exactly what the policy saw. The model name comes from the URL's
``?model=`` parameter (default ``default``); a bearer token from ``TUNERY_REWARD_API_KEY`` when it is set.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tunery.engine.train.errors import invalid_spec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunery.engine.train.reward_model import RewardScorer
    from tunery.spec import JobSpec

API_KEY_ENV = "TUNERY_REWARD_API_KEY"
API_TIMEOUT_SECONDS = 120.0
#: texts per request
API_BATCH = 256


class RewardSource(Protocol):
    def score(self, queries: list[list[int]], responses: list[list[int]]) -> list[float]:
        """One reward per (prompt ids, answer ids) pair, in the policy's token ids."""
        ...


class ModelRewardSource:
    """A reward model trained with stage rm. Same tokenizer as the policy (the usual case: the RM was trained
    on the same base): the policy's ids are scored as they are; otherwise the text is re-encoded."""

    def __init__(self, scorer: RewardScorer, tokenizer: PreTrainedTokenizerBase) -> None:
        self.scorer = scorer
        self.tokenizer = tokenizer
        self.same_tokens = scorer.tokenizer.get_vocab() == tokenizer.get_vocab()

    def score(self, queries: list[list[int]], responses: list[list[int]]) -> list[float]:
        sequences = [list(query) + list(response) for query, response in zip(queries, responses, strict=True)]
        if self.same_tokens:
            return self.scorer.score_ids(sequences)
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=False)
        return self.scorer.score_texts(None, texts)


@dataclass
class ApiRewardSource:
    url: str
    model: str
    tokenizer: PreTrainedTokenizerBase
    api_key: str | None = None

    def score(self, queries: list[list[int]], responses: list[list[int]]) -> list[float]:
        sequences = [list(query) + list(response) for query, response in zip(queries, responses, strict=True)]
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=False)
        scores: list[float] = []
        for start in range(0, len(texts), API_BATCH):  # Tunery's /v1/score takes at most 512 items
            chunk = texts[start : start + API_BATCH]
            scores.extend(post_scores(self.url, self.model, texts=chunk, api_key=self.api_key))
        return scores


def post_scores(
    url: str,
    model: str,
    *,
    texts: list[str] | None = None,
    pairs: list[tuple[str, str]] | None = None,
    api_key: str | None = None,
    timeout: float = API_TIMEOUT_SECONDS,
) -> list[float]:
    """Scores from a ``/v1/score`` endpoint, in input order."""
    body: dict[str, Any] = {
        "model": model,
        "input": texts,
        "pairs": None if pairs is None else [{"prompt": p, "response": r} for p, r in pairs],
    }
    expected = len(texts if texts is not None else pairs or [])
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # the job's own URL
            payload = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise invalid_spec("reward_model", f"the reward API {url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise invalid_spec("reward_model", f"cannot reach the reward API {url}: {exc}") from exc
    except ValueError as exc:
        raise invalid_spec("reward_model", f"the reward API {url} did not answer JSON: {exc}") from exc
    return _scores_from(payload, expected, url)


def _scores_from(payload: Any, expected: int, url: str) -> list[float]:
    data = payload.get("data") if isinstance(payload, dict) else None
    try:
        ordered = sorted(data or [], key=lambda item: int(item["index"]))
        scores = [float(item["score"]) for item in ordered]
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid_spec("reward_model", f"the reward API {url} answered an unexpected body: {exc}") from exc
    if len(scores) != expected or [int(item["index"]) for item in ordered] != list(range(expected)):
        raise invalid_spec("reward_model", f"the reward API {url} returned {len(scores)} scores for {expected} texts")
    return scores


def split_api_url(url: str) -> tuple[str, str]:
    """(endpoint without the ``model`` parameter, model name)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    model = next((value for key, value in query if key == "model"), "") or "default"
    rest = urllib.parse.urlencode([(key, value) for key, value in query if key != "model"])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), model


def load_reward_source(spec: JobSpec, tokenizer: PreTrainedTokenizerBase) -> RewardSource:
    """The job's reward model, loaded once before training (a bad path is an invalid spec, not a crash).

    lora: an rm adapter applied to the policy's base model, loaded as a separate scorer (LLaMA-Factory instead
    swaps adapters on the policy's base: less memory, but it ties the RM to the policy's method and precision);
    full: a full rm model, or with ``reward_model_adapters`` that adapter on ``reward_model`` as its base.
    """
    from tunery.engine.train.model import resolve_compute_dtype
    from tunery.engine.train.reward_model import RewardModelError, load_reward_model

    method = spec.method
    path = method.reward_model
    if not path:
        raise invalid_spec("reward_model", "is required")
    if method.reward_model_type == "api":
        endpoint, model = split_api_url(path)
        return ApiRewardSource(endpoint, model, tokenizer, os.environ.get(API_KEY_ENV) or None)
    dtype = resolve_compute_dtype(spec.training)
    try:
        if method.reward_model_type == "lora":
            scorer = load_reward_model(path, base_model=spec.model.model_name_or_path, dtype=dtype)
        elif method.reward_model_adapters:
            scorer = load_reward_model(method.reward_model_adapters, base_model=path, dtype=dtype)
        else:
            scorer = load_reward_model(path, dtype=dtype)
    except RewardModelError as exc:
        raise invalid_spec("reward_model", str(exc)) from exc
    scorer.model.requires_grad_(False)
    return ModelRewardSource(scorer, tokenizer)
