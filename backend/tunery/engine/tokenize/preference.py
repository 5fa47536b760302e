"""Rows of the preference and RL stages, by LLaMA-Factory 0.9.5's rules (its pairwise, feedback and
unsupervised processors and ``Template.encode_oneturn``):

- The prompt is every turn before the last answer as the chat template renders it (prefix, system, tools,
  earlier turns, the assistant opener); each answer is the last assistant turn as the template renders it,
  with its end-of-turn token; templates with efficient eos get the tokenizer's eos appended (as in LF).
  Pieces are tokenized one by one (as LF encodes message by message) and concatenated.
- pairwise (rm, dpo): the prompt and both answers share one budget,
  ``infer_seqlen(len(prompt), max(len(chosen), len(rejected)), cutoff_len)``, which cuts the prompt's end
  and both answers' ends. kto: the same with its one answer (TRL builds the KL completions itself).
- A row whose answers get no room at all is dropped and counted (LF would keep an empty answer, which
  trains nothing).
- prompt (ppo, grpo): the template's generation prompt (ending with the assistant opener), tokenized as
  one text as generation tokenizes it, and kept whole; a prompt of ``cutoff_len`` tokens or more leaves no
  room for the answer and is dropped. LF instead cuts the prompt's end (losing the opener) by a budget
  shared with the dataset's answer, which these stages never train on; the answer is kept as text, the
  reference that reward functions compare with.

All text pieces of a chunk are tokenized in one batched call (``encode_pool``), repeated pieces once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tunery.engine.data.types import Example, Message
from tunery.engine.templates.base import ChatTemplate
from tunery.engine.tokenize.assembly import pool_with_eos
from tunery.engine.tokenize.columns import COLUMNS, PER_ROW, ColumnRows, Ragged, RowKind
from tunery.engine.tokenize.errors import TokenizeError
from tunery.engine.tokenize.supervised import EncodeOptions, infer_seqlen
from tunery.engine.tokenize.text import encode_pool
from tunery.spec.stages import STAGE_SHAPES

#: The row kind of each stage that does not train on plain token rows (derived from the stage catalog).
STAGE_ROW_KINDS: dict[str, RowKind] = {
    stage: shape for stage, shape in STAGE_SHAPES.items() if shape in ("pairwise", "kto", "prompt")
}

Segments = list[tuple[int, int]]  # (pool start, length) pieces of one row's column


@dataclass
class _Column:
    """One ragged token column being planned: pool segments, row by row."""

    starts: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    row_lengths: list[int] = field(default_factory=list)

    def add(self, segments: Segments, limit: int) -> None:
        """A row made of ``segments``, cut to its first ``limit`` tokens."""
        taken = 0
        for start, length in segments:
            count = min(length, limit - taken)
            if count <= 0:
                break
            self.starts.append(start)
            self.lengths.append(count)
            taken += count
        self.row_lengths.append(taken)

    def build(self, pool: npt.NDArray[np.int32]) -> Ragged:
        lengths = np.asarray(self.lengths, dtype=np.int64)
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        gather = np.repeat(np.asarray(self.starts, dtype=np.int64) - (ends - lengths), lengths) + np.arange(total)
        offsets = np.zeros(len(self.row_lengths) + 1, dtype=np.int64)
        np.cumsum(np.asarray(self.row_lengths, dtype=np.int64), out=offsets[1:])
        return Ragged(pool[gather].astype(np.int32, copy=False), offsets)


def _where(example: Example, index: int) -> str:
    if example.ref is not None:
        return f"{example.ref.file}, row {example.ref.row}"
    return f"example {index + 1}"


def _check(kind: RowKind, example: Example, index: int) -> None:
    """The example's shape must fit the row kind (the data layer makes it so; direct callers may not)."""
    where = _where(example, index)
    if not example.prompt or len(example.prompt) % 2 == 0:
        raise TokenizeError(f"{where}, field 'messages': the prompt must end with a user turn")
    answers = {"pairwise": (2, "a chosen and a rejected answer"), "kto": (1, "one answer")}
    if kind in answers and len(example.response) != answers[kind][0]:
        raise TokenizeError(
            f"{where}, field 'response': stage data of kind {kind} needs {answers[kind][1]}, "
            f"got {len(example.response)} answers"
        )
    if kind == "kto" and type(example.kto_label) is not bool:
        raise TokenizeError(f"{where}, field 'kto_tag': KTO needs a true/false label, got {example.kto_label!r}")


def _pieces(
    template: ChatTemplate, messages: list[Message], example: Example, index: int, options: EncodeOptions
) -> list[str]:
    """The rendered pieces of a conversation: prompt, answer, prompt, answer, ... (a prompt ending with a
    user turn: the generation prompt as one piece)."""
    system = example.system if example.system is not None else options.default_system
    thinking = options.enable_thinking
    try:
        if len(messages) % 2:
            return [template.render_prompt(messages, system, example.tools, enable_thinking=thinking)]
        pairs = template.render_turns(messages, system, example.tools, enable_thinking=thinking)
    except ValueError as err:  # the template's own errors name no row
        raise TokenizeError(f"{_where(example, index)}, field 'messages': {err}") from err
    return [text for pair in pairs for text in pair]


@dataclass
class _Plan:
    """Texts to tokenize and, per example, which of them make its prompt and answers."""

    texts: list[str] = field(default_factory=list)
    prompts: list[range] = field(default_factory=list)
    answers: list[list[int]] = field(default_factory=list)

    def add(self, prompt: Sequence[str], answers: Sequence[str]) -> None:
        start = len(self.texts)
        self.texts.extend(prompt)
        self.prompts.append(range(start, start + len(prompt)))
        self.answers.append(list(range(start + len(prompt), start + len(prompt) + len(answers))))
        self.texts.extend(answers)


def _plan(kind: RowKind, examples: Sequence[Example], template: ChatTemplate, options: EncodeOptions) -> _Plan:
    plan = _Plan()
    for index, example in enumerate(examples):
        _check(kind, example, index)
        if kind == "prompt":
            plan.add(_pieces(template, example.prompt, example, index, options), [])
            continue
        pieces = _pieces(template, [*example.prompt, example.response[0]], example, index, options)
        answers = [pieces[-1]]
        if kind == "pairwise":  # the prompt comes from the chosen rendering, as in LF
            answers.append(_pieces(template, [*example.prompt, example.response[1]], example, index, options)[-1])
        plan.add(pieces[:-1], answers)
    return plan


def encode_column_rows(
    kind: RowKind, examples: Sequence[Example], tokenizer: Any, template: ChatTemplate, options: EncodeOptions
) -> ColumnRows:
    """Rows of ``kind`` for ``examples`` (see the module doc); ``source`` indexes into ``examples``."""
    plan = _plan(kind, examples, template, options)
    pool = encode_pool(tokenizer, plan.texts)
    eos_id = tokenizer.eos_token_id
    efficient_eos = bool(getattr(template, "efficient_eos", False)) and kind != "prompt"
    if efficient_eos and eos_id is None:
        raise TokenizeError(f"template '{template.name}' needs an eos token; the tokenizer has none")
    ids, eos_index = pool_with_eos(pool, eos_id if efficient_eos else None)
    starts, lengths = pool.starts.tolist(), pool.lengths.tolist()
    eos: Segments = [] if eos_index is None else [(eos_index, 1)]
    cutoff = options.cutoff_len

    prompt_column = _Column()
    answer_columns = {name: _Column() for name in COLUMNS[kind][1:] if name.endswith("_ids")}
    kept: list[int] = []
    full_lengths: list[int] = []
    for index, (prompt, answers) in enumerate(zip(plan.prompts, plan.answers, strict=True)):
        prompt_segments = [(starts[i], lengths[i]) for i in prompt]
        prompt_len = sum(length for _, length in prompt_segments)
        if kind == "prompt":
            if prompt_len >= cutoff:
                continue
            prompt_column.add(prompt_segments, prompt_len)
            kept.append(index)
            full_lengths.append(prompt_len)
            continue
        answer_segments = [[(starts[i], lengths[i]), *eos] for i in answers]
        longest = max(lengths[i] for i in answers) + len(eos)
        source_len, target_len = infer_seqlen(prompt_len, longest, cutoff)
        if target_len == 0 or source_len == 0:
            continue
        prompt_column.add(prompt_segments, source_len)
        for column, segments in zip(answer_columns.values(), answer_segments, strict=True):
            column.add(segments, target_len)
        kept.append(index)
        full_lengths.append(prompt_len + longest)

    columns = {"prompt_ids": prompt_column.build(ids)}
    columns.update({name: column.build(ids) for name, column in answer_columns.items()})
    per_row: dict[str, npt.NDArray[Any]] = {
        "source": np.asarray(kept, dtype=np.int64),
        "full_length": np.asarray(full_lengths, dtype=np.int64),
    }
    if kind == "kto":
        per_row["label"] = np.asarray([bool(examples[i].kto_label) for i in kept], dtype=bool)
    elif kind == "prompt":
        texts = [plan.texts[plan.prompts[i].start : plan.prompts[i].stop] for i in kept]
        columns["prompt"] = Ragged.from_texts(["".join(pieces) for pieces in texts])
        references = [examples[i].response[0].content if examples[i].response else None for i in kept]
        columns["reference"] = Ragged.from_texts([text or "" for text in references])
        per_row["has_reference"] = np.asarray([text is not None for text in references], dtype=bool)
    assert set(per_row) == set(PER_ROW[kind])
    return ColumnRows(kind, columns, per_row)
