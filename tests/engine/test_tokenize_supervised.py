"""SFT encoding: label masking, train_on_prompt, mask_history, tools, LLaMA-Factory's cutoff rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.tokenize_support import (
    conversation,
    load_tokenizer,
    sharegpt_examples,
    trained_spans,
)
from tunery.engine.data.types import Example, Message, Role, RowRef
from tunery.engine.templates import get_template
from tunery.engine.tokenize.rows import IGNORE_INDEX
from tunery.engine.tokenize.supervised import (
    EncodeOptions,
    assemble,
    encode_supervised,
    infer_seqlen,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=False))


MULTI_TURN = conversation(
    "What is the capital of France?",
    "Paris is the capital of France.",
    "And of Italy?",
    "Rome is the capital of Italy.",
    system="You are a geography tutor.",
)


@pytest.mark.parametrize("name", ["chatml", "llama3", "default"])
def test_multi_turn_labels_are_exactly_the_responses(tokenizer: Any, name: str) -> None:
    template = get_template(name, tokenizer)
    pairs = template.render_turns(MULTI_TURN.messages, MULTI_TURN.system)
    encoded = encode_supervised([MULTI_TURN], tokenizer, template, EncodeOptions(cutoff_len=1024))
    ids, labels = encoded.input_ids[0], encoded.labels[0]

    assert _decode(tokenizer, ids) == "".join(prompt + response for prompt, response in pairs)
    spans = [_decode(tokenizer, span) for span in trained_spans(ids, labels)]
    assert spans == [response for _, response in pairs]
    assert "Paris is the capital of France." in spans[0]
    assert "Rome is the capital of Italy." in spans[1]
    assert encoded.full_lengths == [len(ids)]


def test_prompt_tokens_are_masked_in_place(tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    encoded = encode_supervised([MULTI_TURN], tokenizer, template, EncodeOptions(cutoff_len=1024))
    ids, labels = encoded.input_ids[0], encoded.labels[0]
    pairs = template.render_turns(MULTI_TURN.messages, MULTI_TURN.system)
    first_prompt = len(tokenizer(pairs[0][0], add_special_tokens=False)["input_ids"])
    assert labels[:first_prompt] == [IGNORE_INDEX] * first_prompt
    assert labels[first_prompt] == ids[first_prompt] != IGNORE_INDEX


def test_train_on_prompt_trains_everything(tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    encoded = encode_supervised([MULTI_TURN], tokenizer, template, EncodeOptions(cutoff_len=1024, train_on_prompt=True))
    assert encoded.labels[0] == encoded.input_ids[0]


def test_mask_history_trains_only_the_last_response(tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    pairs = template.render_turns(MULTI_TURN.messages, MULTI_TURN.system)
    plain = encode_supervised([MULTI_TURN], tokenizer, template, EncodeOptions(cutoff_len=1024))
    masked = encode_supervised([MULTI_TURN], tokenizer, template, EncodeOptions(cutoff_len=1024, mask_history=True))
    assert masked.input_ids == plain.input_ids  # same order of turns in the sequence
    spans = [_decode(tokenizer, span) for span in trained_spans(masked.input_ids[0], masked.labels[0])]
    assert spans == [pairs[-1][1]]


def test_mask_history_keeps_the_last_turns_when_cut(tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    last_prompt, last_response = template.render_turns(MULTI_TURN.messages, MULTI_TURN.system)[-1]
    budget = len(tokenizer(last_prompt + last_response, add_special_tokens=False)["input_ids"])
    budget_ids = tokenizer(last_prompt, add_special_tokens=False)["input_ids"]
    budget_ids += tokenizer(last_response, add_special_tokens=False)["input_ids"]
    options = EncodeOptions(cutoff_len=len(budget_ids), mask_history=True)
    encoded = encode_supervised([MULTI_TURN], tokenizer, template, options)
    assert encoded.input_ids[0] == budget_ids  # the last turn whole, the first turn dropped
    assert _decode(tokenizer, [t for t in encoded.labels[0] if t != IGNORE_INDEX]) == last_response
    assert encoded.truncated(options.cutoff_len) == 1
    assert budget > 0


@pytest.mark.parametrize("name", ["qwen", "llama3"])
def test_tool_conversations_train_calls_and_mask_observations(tokenizer: Any, demo_data_dir: Path, name: str) -> None:
    examples = sharegpt_examples(demo_data_dir / "glaive_toolcall_en_demo.json", limit=20)
    assert any(m.role == Role.OBSERVATION for ex in examples for m in ex.messages)
    template = get_template(name, tokenizer)
    encoded = encode_supervised(examples, tokenizer, template, EncodeOptions(cutoff_len=100_000))
    for example, ids, labels in zip(examples, encoded.input_ids, encoded.labels, strict=True):
        pairs = template.render_turns(example.messages, example.system, example.tools)
        spans = [_decode(tokenizer, span) for span in trained_spans(ids, labels)]
        assert spans == [response for _, response in pairs]
        masked = _decode(tokenizer, [t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX])
        for message in example.messages:
            if message.role == Role.OBSERVATION:
                key = message.content.strip()[:20]
                assert key in masked  # tool results are context, never trained
                assert all(key not in span for span in spans)
        calls = [m for m in example.messages if m.role == Role.FUNCTION]
        for call in calls:  # the tool call's function name is in a trained span
            name_part = call.content.split('"name": "')[1].split('"')[0]
            assert any(name_part in span for span in spans)


def test_bad_conversation_names_file_row_and_field(tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    bad = Example(
        prompt=[Message(Role.USER, "q"), Message(Role.USER, "q2")],
        response=[Message(Role.ASSISTANT, "a")],
        ref=RowRef("mine", "data/mine.json", 7),
    )
    with pytest.raises(ValueError, match=r"data/mine.json, row 7, field 'messages"):
        encode_supervised([bad], tokenizer, template, EncodeOptions(cutoff_len=64))
    two = Example(
        prompt=[Message(Role.USER, "q")],
        response=[Message(Role.ASSISTANT, "a"), Message(Role.ASSISTANT, "b")],
        ref=RowRef("mine", "data/mine.json", 9),
    )
    with pytest.raises(ValueError, match=r"row 9, field 'response'"):
        encode_supervised([two], tokenizer, template, EncodeOptions(cutoff_len=64))


# ----- the cutoff rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "cutoff", "expected"),
    [
        # values worked out by hand from LLaMA-Factory's infer_seqlen
        (10, 20, 100, (10, 20)),  # fits
        (1000, 20, 100, (80, 20)),  # short response (< half) kept whole, prompt cut
        (20, 1000, 100, (20, 80)),  # short prompt (< half) kept whole, response cut
        (300, 100, 100, (75, 25)),  # both long: shared in proportion
        (100, 300, 100, (25, 75)),
        (50, 50, 100, (50, 50)),  # exactly the budget
        (60, 60, 100, (50, 50)),
        (7, 3, 5, (4, 1)),  # int(1.5): the response share rounds down
        (0, 500, 10, (0, 10)),
        (5, 5, 0, (0, 0)),
    ],
)
def test_infer_seqlen_matches_llamafactory(source: int, target: int, cutoff: int, expected: tuple[int, int]) -> None:
    assert infer_seqlen(source, target, cutoff) == expected


def _turns(*sizes: tuple[int, int]) -> list[tuple[list[int], list[int]]]:
    """Turns of distinct ids: turn k's prompt ids are 1000k + i, its response ids 1000k + 500 + i."""
    return [
        ([1000 * k + i for i in range(s)], [1000 * k + 500 + i for i in range(t)])
        for k, (s, t) in enumerate(sizes, start=1)
    ]


def test_cutoff_is_applied_turn_by_turn() -> None:
    turns = _turns((10, 20), (30, 40))
    ids, labels, full = assemble(turns, EncodeOptions(cutoff_len=50))
    # turn 1 fits (30 of 50); turn 2 gets the remaining 20: both long -> 11 response, 9 prompt
    assert full == 100
    assert ids == turns[0][0] + turns[0][1] + turns[1][0][:9] + turns[1][1][:11]
    assert labels == [IGNORE_INDEX] * 10 + turns[0][1] + [IGNORE_INDEX] * 9 + turns[1][1][:11]


def test_cutoff_drops_turns_once_the_budget_is_used() -> None:
    turns = _turns((10, 40), (5, 5))
    ids, _, _ = assemble(turns, EncodeOptions(cutoff_len=50))
    assert ids == turns[0][0] + turns[0][1]


def test_cutoff_with_mask_history_gives_the_budget_to_the_last_turn() -> None:
    turns = _turns((10, 20), (30, 40))
    ids, labels, _ = assemble(turns, EncodeOptions(cutoff_len=50, mask_history=True))
    # reversed: the last turn first, infer_seqlen(30, 40, 50) = (22, 28); budget used, turn 1 dropped
    assert ids == turns[1][0][:22] + turns[1][1][:28]
    assert labels == [IGNORE_INDEX] * 22 + turns[1][1][:28]


def test_efficient_eos_labels_the_next_prompt_and_closes_with_eos() -> None:
    eos = 99
    turns = _turns((2, 3), (2, 3))
    ids, labels, full = assemble(turns, EncodeOptions(cutoff_len=100), efficient_eos_id=eos)
    assert ids == turns[0][0] + turns[0][1] + turns[1][0] + turns[1][1] + [eos]
    assert labels == [IGNORE_INDEX] * 2 + turns[0][1] + [eos, IGNORE_INDEX] + turns[1][1] + [eos]
    assert full == 11


def test_truncated_count_over_a_batch(tokenizer: Any) -> None:
    template = get_template("chatml", tokenizer)
    short = conversation("hi", "hello")
    long = conversation("tell me " * 200, "ok " * 200)
    encoded = encode_supervised([short, long, short], tokenizer, template, EncodeOptions(cutoff_len=64))
    assert [len(ids) <= 64 for ids in encoded.input_ids] == [True, True, True]
    assert len(encoded.input_ids[1]) == 64
    assert encoded.truncated(64) == 1


def test_efficient_eos_template_end_to_end(tokenizer: Any) -> None:
    template = get_template("baichuan2", tokenizer)
    assert template.efficient_eos
    pairs = template.render_turns(MULTI_TURN.messages, MULTI_TURN.system)
    encoded = encode_supervised([MULTI_TURN], tokenizer, template, EncodeOptions(cutoff_len=1024))
    ids, labels = encoded.input_ids[0], encoded.labels[0]
    eos = tokenizer.eos_token_id
    assert ids[-1] == labels[-1] == eos and ids.count(eos) == 1  # one eos, closing the sequence
    first_turn = sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in pairs[0])
    # the second prompt's first token is labelled eos: "the first answer ends here"
    assert labels[first_turn] == eos and ids[first_turn] != eos
    assert labels[first_turn + 1] == IGNORE_INDEX
    trained = [tok for tok, lab in zip(ids, labels, strict=True) if lab == tok]
    assert tokenizer.decode(trained) == pairs[0][1] + pairs[1][1] + tokenizer.eos_token


# ----- the numpy assembly ---------------------------------------------------------------------------


@pytest.mark.parametrize("train_on_prompt", [False, True])
@pytest.mark.parametrize("mask_history", [False, True])
@pytest.mark.parametrize("efficient_eos", [False, True])
def test_planned_rows_equal_the_reference_assembly(
    train_on_prompt: bool, mask_history: bool, efficient_eos: bool
) -> None:
    import random

    import numpy as np

    from tunery.engine.tokenize.assembly import SegmentPlan, build_rows
    from tunery.engine.tokenize.supervised import plan_row

    rng = random.Random(f"{train_on_prompt}{mask_history}{efficient_eos}")
    eos = 99_999
    examples = [
        _turns(*[(rng.randint(0, 40), rng.randint(0, 40)) for _ in range(rng.randint(1, 4))]) for _ in range(60)
    ]
    for cutoff in (1, 7, 30, 64, 1000):
        options = EncodeOptions(cutoff_len=cutoff, train_on_prompt=train_on_prompt, mask_history=mask_history)
        pool: list[int] = []
        plan = SegmentPlan()
        expected = []
        for turns in examples:
            spans = []
            for source, target in turns:
                spans.append((len(pool), len(source), len(pool) + len(source), len(target)))
                pool += source + target
            expected.append(assemble(turns, options, eos if efficient_eos else None))
            plan_row(plan, spans, options, len(pool) if efficient_eos else None)
            if efficient_eos:
                pool.append(eos)  # each row's eos right after its texts (any pool index works)
        rows = build_rows(plan, np.asarray(pool, dtype=np.int32), eos)
        for index, (ids, labels, full) in enumerate(expected):
            start, end = int(rows.offsets[index]), int(rows.offsets[index + 1])
            assert rows.input_ids[start:end].tolist() == ids
            assert rows.labels[start:end].tolist() == labels
            assert plan.full_lengths[index] == full
