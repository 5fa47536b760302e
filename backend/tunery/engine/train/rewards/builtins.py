"""Built-in text rewards: exact_match, regex, format, length (catalog: ``tunery.spec.rewards``)."""

from __future__ import annotations

import re
from typing import Any

from tunery.engine.train.errors import invalid_spec
from tunery.engine.train.rewards import RewardContext, RewardFunc, register_reward

_MISSING = object()


def _arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = args.get(name, default)
    if value is _MISSING:
        raise invalid_spec(f"{where}.args", f"needs {name}")
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise invalid_spec(f"{where}.args.{name}", f"must be a {names}, got {value!r}")
    return value


def _compile(pattern: str, where: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise invalid_spec(where, f"is not a valid regular expression: {exc}") from exc


@register_reward("exact_match")
def exact_match(args: dict[str, Any], context: RewardContext, where: str) -> RewardFunc:
    ignore_case = _arg(args, "ignore_case", bool, True, where)
    whitespace = _arg(args, "normalize_whitespace", bool, True, where)
    extract = _arg(args, "extract", str, None, where)
    extractor = None if extract is None else _compile(extract, f"{where}.args.extract", re.DOTALL)

    def normalise(text: str) -> str:
        if whitespace:
            text = " ".join(text.split())
        return text.casefold() if ignore_case else text

    def answer(text: str) -> str | None:
        if extractor is None:
            return text
        found = extractor.search(text)
        if found is None:
            return None
        return found.group(1) if extractor.groups else found.group(0)

    def reward(completions: list[Any], reference: list[str | None] | None = None, **_: Any) -> list[float | None]:
        references = reference if reference is not None else [None] * len(completions)
        scores: list[float | None] = []
        for completion, expected in zip(completions, references, strict=True):
            if expected is None:
                scores.append(None)  # no reference answer: this row is not scored
                continue
            got = answer(context.answer_text(completion))
            scores.append(float(got is not None and normalise(got) == normalise(expected)))
        return scores

    return reward


@register_reward("regex")
def regex(args: dict[str, Any], context: RewardContext, where: str) -> RewardFunc:
    pattern = _compile(_arg(args, "pattern", str, _MISSING, where), f"{where}.args.pattern", re.DOTALL)
    full = _arg(args, "full", bool, False, where)

    def reward(completions: list[Any], **_: Any) -> list[float]:
        texts = [context.answer_text(completion) for completion in completions]
        match = pattern.fullmatch if full else pattern.search
        return [float(match(text) is not None) for text in texts]

    return reward


@register_reward("format")
def format_check(args: dict[str, Any], context: RewardContext, where: str) -> RewardFunc:
    tags = _arg(args, "tags", list, ["think", "answer"], where)
    if not tags or not all(isinstance(tag, str) and tag for tag in tags):
        raise invalid_spec(f"{where}.args.tags", "must be a non-empty list of tag names")
    body = r"\s*".join(f"<{re.escape(tag)}>.*?</{re.escape(tag)}>" for tag in tags)
    pattern = re.compile(rf"\s*{body}\s*", re.DOTALL)

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [float(pattern.fullmatch(context.answer_text(c)) is not None) for c in completions]

    return reward


@register_reward("length")
def length(args: dict[str, Any], context: RewardContext, where: str) -> RewardFunc:
    target = _arg(args, "target", int, _MISSING, where)
    unit = _arg(args, "unit", str, "tokens", where)
    only_longer = _arg(args, "only_longer", bool, False, where)
    if target <= 0:
        raise invalid_spec(f"{where}.args.target", "must be a positive length")
    if unit not in ("tokens", "chars"):
        raise invalid_spec(f"{where}.args.unit", "must be tokens or chars")

    def reward(completions: list[Any], completion_ids: list[list[int]], **_: Any) -> list[float]:
        if unit == "tokens":
            sizes = [len(ids) for ids in completion_ids]
        else:
            sizes = [len(context.answer_text(completion)) for completion in completions]
        misses = [max(0, size - target) if only_longer else abs(size - target) for size in sizes]
        return [-miss / target for miss in misses]

    return reward
