"""Pretraining blocks, greedy knapsack bins, packed rows and the collators."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.engine.tokenize_support import load_tokenizer
from tunery.engine.data.types import Example, Message, Role
from tunery.engine.tokenize.collate import PackedCollator, PaddingCollator
from tunery.engine.tokenize.packing import greedy_knapsack, pack_rows
from tunery.engine.tokenize.pretrain import document_ids, encode_pretrain, pack_blocks
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> Any:
    return load_tokenizer(tiny_llama)


def _docs(*texts: str) -> list[Example]:
    return [Example(prompt=[], response=[Message(Role.ASSISTANT, text)]) for text in texts]


DOCS = _docs(
    "The quick brown fox jumps over the lazy dog.",
    "Pack these documents into blocks of the cutoff length.",
    "A third document, somewhat longer than the others, closes the stream.",
)


# ----- pretraining -------------------------------------------------------------------------------


def test_pretrain_appends_eos_and_cuts(tokenizer: Any) -> None:
    encoded = encode_pretrain(DOCS, tokenizer, None, cutoff_len=8)
    whole = encode_pretrain(DOCS, tokenizer, None, cutoff_len=10_000)
    for ids, labels, full in zip(whole.input_ids, whole.labels, whole.full_lengths, strict=True):
        assert ids[-1] == tokenizer.eos_token_id and labels == ids and full == len(ids)
    assert all(len(ids) == 8 for ids in encoded.input_ids)
    assert [ids for ids in encoded.input_ids] == [ids[:8] for ids in whole.input_ids]
    assert encoded.truncated(8) == 3


def test_llama3_documents_end_with_end_of_text(tokenizer: Any) -> None:
    ids = document_ids(DOCS[:1], tokenizer, "llama3")[0]
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|end_of_text|>")


def test_pretrain_packing_concatenates_into_full_blocks(tokenizer: Any) -> None:
    docs = document_ids(DOCS, tokenizer, None)
    stream = [token for doc in docs for token in doc]
    rows, leftover = pack_blocks(docs, tokenizer, block_size=16)
    assert len(rows) == len(stream) // 16
    assert rows.lengths.tolist() == [16] * len(rows)
    assert rows.input_ids.tolist() == stream[: 16 * len(rows)]
    assert rows.labels.tolist() == rows.input_ids.tolist()
    assert leftover == stream[16 * len(rows) :]
    # documents cross block boundaries: eos sits inside blocks, not only at their ends
    assert tokenizer.eos_token_id in rows.input_ids[:-1].tolist()


def test_pretrain_packing_carries_the_leftover_and_sets_bos(tokenizer: Any) -> None:
    docs = document_ids(DOCS, tokenizer, None)
    first, leftover = pack_blocks(docs[:1], tokenizer, block_size=4)
    second, _ = pack_blocks(docs[1:], tokenizer, block_size=4, carry=leftover)
    both, _ = pack_blocks(docs, tokenizer, block_size=4)
    assert np.concatenate([first.input_ids, second.input_ids]).tolist() == both.input_ids.tolist()

    tokenizer.add_bos_token = True
    try:
        with_bos, _ = pack_blocks(docs, tokenizer, block_size=4)
    finally:
        tokenizer.add_bos_token = False
    assert with_bos.input_ids[::4].tolist() == [tokenizer.bos_token_id] * len(with_bos)
    assert with_bos.input_ids.reshape(-1, 4)[:, 1:].tolist() == both.input_ids.reshape(-1, 4)[:, 1:].tolist()


# ----- knapsack ----------------------------------------------------------------------------------


def _reference_greedy(lengths: list[int], capacity: int) -> list[list[int]]:
    """The plain greedy algorithm: sorted list, take the largest that fits, one bin at a time."""
    numbers = sorted(n for n in lengths if n <= capacity)
    bins = []
    while numbers:
        remaining, current = capacity, []
        while True:
            fitting = [i for i, n in enumerate(numbers) if n <= remaining]
            if not fitting:
                break
            taken = numbers.pop(fitting[-1])
            remaining -= taken
            current.append(taken)
        bins.append(current)
    return bins


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_knapsack_matches_the_plain_greedy(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(1, 120) for _ in range(300)] + [130, 500]  # two too long for a bin
    bins = greedy_knapsack(lengths, 128)
    assert [[lengths[i] for i in b] for b in bins] == _reference_greedy(lengths, 128)
    used = sorted(i for b in bins for i in b)
    assert used == [i for i, n in enumerate(lengths) if n <= 128]
    assert all(sum(lengths[i] for i in b) <= 128 for b in bins)


# ----- packed rows -------------------------------------------------------------------------------


def _rows(lengths: list[int]) -> TokenRows:
    ids = [[100 * k + i for i in range(n)] for k, n in enumerate(lengths, start=1)]
    return TokenRows.from_lists(ids, [list(seq) for seq in ids])


def test_pack_rows_restarts_positions_and_masks_first_labels() -> None:
    lengths = [5, 3, 7, 2, 6, 9]
    rows = _rows(lengths)
    packed, dropped = pack_rows(rows, capacity=10, neat=True)
    assert dropped == 0
    assert packed.position_ids is not None
    assert all(n <= 10 for n in packed.lengths.tolist())
    seen = []
    for r in range(len(packed)):
        item = packed.row(r)
        starts = [i for i, p in enumerate(item["position_ids"]) if p == 0]
        bounds = [*starts, len(item["input_ids"])]
        for a, b in pairwise(bounds):
            seq = item["input_ids"][a:b]
            assert item["position_ids"][a:b] == list(range(b - a))
            assert item["labels"][a] == IGNORE_INDEX and item["labels"][a + 1 : b] == seq[1:]
            seen.append(seq)
    original = [rows.row(i)["input_ids"] for i in range(len(rows))]
    assert sorted(seen) == sorted(original)


def test_pack_rows_without_neat_keeps_labels_and_drops_nothing_that_fits() -> None:
    rows = _rows([4, 4, 12])
    packed, dropped = pack_rows(rows, capacity=10, neat=False)
    assert dropped == 1  # 12 > 10
    assert packed.labels.tolist() == packed.input_ids.tolist()


# ----- collators ---------------------------------------------------------------------------------


def test_padding_collator_pads_to_longest_and_multiple() -> None:
    rows = _rows([3, 5])
    features = [rows.row(0), rows.row(1)]
    features[0]["labels"][0] = IGNORE_INDEX
    batch = PaddingCollator(pad_token_id=0)(features)
    assert batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 101, 102, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["input_ids"][0].tolist() == [100, 101, 102, 0, 0]
    assert "position_ids" not in batch
    padded = PaddingCollator(pad_token_id=0, pad_to_multiple_of=8)(features)
    assert padded["input_ids"].shape == (2, 8)


def test_packed_collator_pads_with_a_separate_segment() -> None:
    packed, _ = pack_rows(_rows([5, 3, 7, 2]), capacity=10)
    features = [packed.row(i) for i in range(len(packed))]
    batch = PackedCollator(pad_token_id=0, pad_to_multiple_of=8)(features)
    assert "attention_mask" not in batch and batch["use_cache"] is False
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and width >= max(len(f["input_ids"]) for f in features)
    for row, feature in zip(range(len(features)), features, strict=True):
        n = len(feature["input_ids"])
        assert batch["position_ids"][row, :n].tolist() == feature["position_ids"]
        assert batch["position_ids"][row, n:].tolist() == list(range(width - n))
        assert batch["labels"][row, n:].eq(IGNORE_INDEX).all()
    flat = PackedCollator(pad_token_id=0, flatten=True)(features)
    assert flat["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))
    assert flat["position_ids"][0].tolist() == [p for f in features for p in f["position_ids"]]
    assert isinstance(flat["labels"], torch.Tensor)
