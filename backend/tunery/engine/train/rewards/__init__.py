"""GRPO reward functions: the built-ins of the spec's catalog (``tunery.spec.rewards``) registered by name here,
and user functions imported from ``package.module:function``; each becomes a TRL reward function.

A reward function is called with keyword arguments only, one list entry per completion: ``prompts`` (the
rendered prompt texts), ``completions`` (the answers' texts), ``completion_ids``, ``prompt_ids``,
``reference`` (the dataset's answer column, None where a row has none), ``trainer_state``, and TRL's
``log_extra`` / ``log_metric``; plus the spec's ``args``. It returns one float (or None: not scored) each.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunery.engine.train.errors import invalid_spec
from tunery.spec.rewards import REWARD_NAMES

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunery.engine.train.rewards.scoring import RewardSource
    from tunery.spec import JobSpec

RewardFunc = Callable[..., Any]


@dataclass
class RewardContext:
    """What a built-in may need besides its args: the job, the tokenizer, the template's stop words."""

    spec: JobSpec
    tokenizer: PreTrainedTokenizerBase
    stop_words: list[str] = field(default_factory=list)
    _source: RewardSource | None = None

    def reward_source(self) -> RewardSource:
        """The job's reward model, loaded on first use."""
        if self._source is None:
            from tunery.engine.train.rewards.scoring import load_reward_source

            self._source = load_reward_source(self.spec, self.tokenizer)
        return self._source

    def answer_text(self, completion: Any) -> str:
        """A completion's text without the template's trailing stop words (TRL keeps non-special ones)."""
        text = completion if isinstance(completion, str) else str(completion[-1]["content"])
        stripped = text.rstrip()
        changed = True
        while changed:
            changed = False
            for word in self.stop_words:
                if word and stripped.endswith(word):
                    stripped = stripped[: -len(word)].rstrip()
                    changed = True
        return stripped


#: Builds one reward function from its spec args (``where`` names the spec entry for error messages).
RewardFactory = Callable[[dict[str, Any], RewardContext, str], RewardFunc]
BUILTIN_REWARDS: dict[str, RewardFactory] = {}


def register_reward(name: str) -> Callable[[RewardFactory], RewardFactory]:
    def add(factory: RewardFactory) -> RewardFactory:
        if name in BUILTIN_REWARDS:
            raise RuntimeError(f"reward function {name!r} registered twice")
        BUILTIN_REWARDS[name] = factory
        return factory

    return add


def build_reward_funcs(spec: JobSpec, context: RewardContext) -> tuple[list[RewardFunc], list[float]]:
    """The spec's reward functions (each named for its metrics, names made unique) and their weights.
    Fails with an invalid_spec error naming the entry before any training."""
    from tunery.engine.train.rewards import builtins, model_reward  # noqa: F401 - register the built-ins

    funcs: list[RewardFunc] = []
    names: set[str] = set()
    for index, entry in enumerate(spec.method.reward_funcs):
        where = f"reward_funcs[{index}]"
        factory = BUILTIN_REWARDS.get(entry.name)
        if factory is not None:
            func, name = factory(dict(entry.args), context, where), entry.name
        elif ":" in entry.name:
            target = import_user_function(entry.name, f"{where}.name")
            func, name = bind_args(target, dict(entry.args)), entry.name.rsplit(":", 1)[1].rsplit(".", 1)[-1]
        else:
            raise invalid_spec(
                f"{where}.name",
                f"unknown reward function {entry.name!r}; built-ins: {', '.join(REWARD_NAMES)}, "
                "or 'package.module:function'",
            )
        unique, suffix = name, 2
        while unique in names:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        names.add(unique)
        funcs.append(named(func, unique))
    return funcs, [entry.weight for entry in spec.method.reward_funcs]


def import_user_function(reference: str, key: str) -> Callable[..., Any]:
    """``package.module:function`` imported (the working folder is importable, as for uvicorn apps)."""
    module_name, _, attribute = reference.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a spec problem, reported as such
        raise invalid_spec(key, f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise invalid_spec(key, f"{module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise invalid_spec(key, f"{reference} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def bind_args(func: Callable[..., Any], args: dict[str, Any]) -> RewardFunc:
    """``func`` called with the spec's args added to TRL's keyword arguments (coroutines stay coroutines)."""
    if not args:
        return func
    if inspect.iscoroutinefunction(func):

        async def call_async(**kwargs: Any) -> Any:
            return await func(**kwargs, **args)

        return call_async

    def call(**kwargs: Any) -> Any:
        return func(**kwargs, **args)

    return call


def named(func: RewardFunc, name: str) -> RewardFunc:
    """A wrapper whose ``__name__`` (TRL's metric name ``rewards/<name>/mean``) is ``name``."""
    if inspect.iscoroutinefunction(func):

        async def call_async(**kwargs: Any) -> Any:
            return await func(**kwargs)

        call_async.__name__ = name
        return call_async

    def call(**kwargs: Any) -> Any:
        return func(**kwargs)

    call.__name__ = name
    return call
