"""Supervised (SFT) encoding: prompt tokens masked, response tokens trained, LLaMA-Factory's cutoff rule.

All turns of all examples are rendered to text first, tokenized in large batches into one token pool,
then planned turn by turn (lengths only) and assembled with numpy gathers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tunery.engine.data.types import Example, Role
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.assembly import SegmentPlan, build_rows, pool_with_eos
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows
from tunery.engine.tokenize.text import encode_pool

_PROMPT_ROLES = (Role.USER, Role.OBSERVATION)
_ANSWER_ROLES = (Role.ASSISTANT, Role.FUNCTION)


@dataclass(frozen=True)
class EncodeOptions:
    """The data options that shape token ids and labels."""

    cutoff_len: int
    train_on_prompt: bool = False
    mask_history: bool = False
    enable_thinking: bool | None = True
    default_system: str | None = None


@dataclass
class Encoded:
    """Encoded sequences; ``full_lengths`` are the lengths before the cutoff (truncated if > cutoff)."""

    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    full_lengths: list[int] = field(default_factory=list)

    def truncated(self, cutoff_len: int) -> int:
        return sum(1 for length in self.full_lengths if length > cutoff_len)


def infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """LLaMA-Factory's split of a budget between a prompt and its response.

    A side shorter than half the budget is kept whole and the other side gets the rest; when both
    are long, the budget is shared in proportion to their lengths.
    """
    if target_len * 2 < cutoff_len:
        max_target = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target = cutoff_len - source_len
    else:
        max_target = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target = min(max_target, target_len)
    new_source = min(max(cutoff_len - new_target, 0), source_len)
    return new_source, new_target


def _where(example: Example, index: int) -> str:
    if example.ref is not None:
        return f"{example.ref.file}, row {example.ref.row}"
    return f"example {index + 1}"


def check_conversation(example: Example, index: int) -> None:
    """Raise a clear error for an example that is not prompt turns + one response."""
    where = _where(example, index)
    if len(example.response) != 1:
        raise TokenizeError(
            f"{where}, field 'response': supervised training needs exactly one response (got {len(example.response)})"
        )
    messages = example.messages
    if len(messages) % 2 != 0 or not example.prompt:
        raise TokenizeError(f"{where}, field 'messages': turns must alternate prompt/response, got {len(messages)}")
    for turn, message in enumerate(messages):
        expected = _PROMPT_ROLES if turn % 2 == 0 else _ANSWER_ROLES
        if message.role not in expected:
            names = " or ".join(role.value for role in expected)
            raise TokenizeError(f"{where}, field 'messages[{turn}].role': expected {names}, got {message.role.value}")


def render_pairs(
    examples: Sequence[Example], template: ChatTemplate, options: EncodeOptions
) -> list[list[tuple[str, str]]]:
    """Text of every (prompt, response) pair of every example."""
    rendered = []
    for index, example in enumerate(examples):
        check_conversation(example, index)
        system = example.system if example.system is not None else options.default_system
        try:
            pairs = template.render_turns(
                example.messages, system, example.tools, enable_thinking=options.enable_thinking
            )
        except ValueError as err:  # the template's own errors name no row
            raise TokenizeError(f"{_where(example, index)}, field 'messages': {err}") from err
        rendered.append(pairs)
    return rendered


def encode_supervised_rows(
    examples: Sequence[Example], tokenizer: Any, template: ChatTemplate, options: EncodeOptions
) -> tuple[TokenRows, npt.NDArray[np.int64]]:
    """Token rows of SFT examples (one per example, cut to ``cutoff_len``) and their untruncated lengths."""
    rendered = render_pairs(examples, template, options)
    pool = encode_pool(tokenizer, [text for pairs in rendered for pair in pairs for text in pair])
    efficient_eos = bool(getattr(template, "efficient_eos", False))
    eos_id = tokenizer.eos_token_id
    if efficient_eos and eos_id is None:
        raise TokenizeError(f"template '{template.name}' needs an eos token; the tokenizer has none")
    ids, eos_index = pool_with_eos(pool, eos_id if efficient_eos else None)
    starts, lengths = pool.starts.tolist(), pool.lengths.tolist()
    plan = SegmentPlan()
    cursor = 0
    for pairs in rendered:
        turns = [
            (starts[i], lengths[i], starts[i + 1], lengths[i + 1]) for i in range(cursor, cursor + 2 * len(pairs), 2)
        ]
        cursor += 2 * len(pairs)
        plan_row(plan, turns, options, eos_index)
    return build_rows(plan, ids, eos_id), np.asarray(plan.full_lengths, dtype=np.int64)


def encode_supervised(
    examples: Sequence[Example], tokenizer: Any, template: ChatTemplate, options: EncodeOptions
) -> Encoded:
    """:func:`encode_supervised_rows` as lists (one sequence per example, cut to ``cutoff_len``)."""
    rows, full_lengths = encode_supervised_rows(examples, tokenizer, template, options)
    out = Encoded(full_lengths=full_lengths.tolist())
    for index in range(len(rows)):
        start, end = int(rows.offsets[index]), int(rows.offsets[index + 1])
        out.input_ids.append(rows.input_ids[start:end].tolist())
        out.labels.append(rows.labels[start:end].tolist())
    return out


def plan_row(
    plan: SegmentPlan,
    turns: Sequence[tuple[int, int, int, int]],
    options: EncodeOptions,
    eos_index: int | None = None,
) -> None:
    """Add one row: ``turns`` are (prompt start, prompt length, response start, response length) in the
    pool. The same rule as :func:`assemble` (the reference, on lists); ``eos_index``: pool index of the eos token for
    templates with efficient eos (None otherwise)."""
    cutoff = options.cutoff_len
    extra = 1 if eos_index is not None else 0
    full = extra + sum(source_len + target_len for _, source_len, _, target_len in turns)
    order = list(reversed(turns)) if options.mask_history else list(turns)
    total = extra
    pieces: list[tuple[int, int, int, int, bool, bool, bool]] = []
    for turn, (source, source_len, target, target_len) in enumerate(order):
        if total >= cutoff:
            break
        if full > cutoff:
            source_len, target_len = infer_seqlen(source_len, target_len, cutoff - total)
        total += source_len + target_len
        eos_first = not options.train_on_prompt and eos_index is not None and turn != 0 and source_len > 0
        trained = not (options.mask_history and turn != 0)
        pieces.append((source, source_len, target, target_len, options.train_on_prompt, eos_first, trained))
    if options.mask_history:
        pieces.reverse()
    for source, source_len, target, target_len, prompt_trained, eos_first, trained in pieces:
        plan.add(source, source_len, prompt_trained, eos_first)
        plan.add(target, target_len, trained)
    if eos_index is not None:
        plan.add(eos_index, 1, True)
    plan.row_lengths.append(total)
    plan.full_lengths.append(full)


def assemble(
    turns: Sequence[tuple[list[int], list[int]]], options: EncodeOptions, efficient_eos_id: int | None = None
) -> tuple[list[int], list[int], int]:
    """Join turns into (input_ids, labels, untruncated length), turn by turn as LLaMA-Factory does.

    With ``mask_history`` turns are taken last-first (the last turns keep the budget) and only the
    last response is trained. ``efficient_eos_id``: the template puts no eos after responses; the
    label of the next prompt's first token is eos instead, and one eos closes the sequence.
    """
    cutoff = options.cutoff_len
    extra = 1 if efficient_eos_id is not None else 0
    full = extra + sum(len(source) + len(target) for source, target in turns)
    order = list(reversed(turns)) if options.mask_history else list(turns)
    total = extra
    pieces: list[tuple[list[int], list[int]]] = []
    for turn, (source, target) in enumerate(order):
        if total >= cutoff:
            break
        if full > cutoff:
            source_len, target_len = infer_seqlen(len(source), len(target), cutoff - total)
            source, target = source[:source_len], target[:target_len]
        total += len(source) + len(target)
        if options.train_on_prompt:
            source_labels = list(source)
        elif efficient_eos_id is not None and turn != 0 and source:
            source_labels = [efficient_eos_id] + [IGNORE_INDEX] * (len(source) - 1)
        else:
            source_labels = [IGNORE_INDEX] * len(source)
        trained = not (options.mask_history and turn != 0)
        target_labels = list(target) if trained else [IGNORE_INDEX] * len(target)
        pieces.append((source + target, source_labels + target_labels))
    if options.mask_history:
        pieces.reverse()
    input_ids = [token for piece_ids, _ in pieces for token in piece_ids]
    labels = [token for _, piece_labels in pieces for token in piece_labels]
    if efficient_eos_id is not None:
        input_ids.append(efficient_eos_id)
        labels.append(efficient_eos_id)
    return input_ids, labels, full
