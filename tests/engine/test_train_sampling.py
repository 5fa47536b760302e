"""Length-grouped sampling: every row once per epoch, deterministic, little padding; the spec default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunery.engine.train.sampling import LengthGroupedSampler
from tunery.engine.train.stages.arguments import build_training_arguments, length_grouping
from tunery.spec import JobSpec


def _lengths(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(5, 500, size=count)


def _padded(lengths: np.ndarray, order: list[int], batch: int) -> int:
    """Token slots the batches take once padded to their longest row."""
    return sum(
        int(lengths[order[i : i + batch]].max()) * len(order[i : i + batch]) for i in range(0, len(order), batch)
    )


@pytest.mark.parametrize(("count", "batch", "mega"), [(120, 4, 50), (1001, 8, 3), (7, 4, 2), (1, 3, 50)])
def test_each_epoch_yields_every_row_once(count: int, batch: int, mega: int) -> None:
    sampler = LengthGroupedSampler(_lengths(count), batch, seed=5, megabatch_batches=mega)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(count)) and len(sampler) == count


def test_order_depends_only_on_seed_and_epoch() -> None:
    lengths = _lengths(300)
    first, second = LengthGroupedSampler(lengths, 4, seed=1), LengthGroupedSampler(lengths, 4, seed=1)
    assert list(first) == list(second)  # epoch 0 both
    assert list(first) == list(second)  # both advanced to epoch 1 on their own
    second.set_epoch(0)
    assert list(second) != list(first)  # epoch 0 is not epoch 2
    assert list(LengthGroupedSampler(lengths, 4, seed=2)) != list(LengthGroupedSampler(lengths, 4, seed=1))


def test_batches_hold_similar_lengths_in_a_shuffled_order() -> None:
    lengths = _lengths(2000)
    batch = 4
    order = list(LengthGroupedSampler(lengths, batch, seed=0))
    shuffled = np.random.default_rng(0).permutation(len(lengths)).tolist()
    assert _padded(lengths, order, batch) < 0.75 * _padded(lengths, shuffled, batch)
    assert int(lengths[order[:batch]].max()) == int(lengths.max())  # the longest row is in the first batch
    maxima = [int(lengths[order[i : i + batch]].max()) for i in range(batch, len(order), batch)]
    assert maxima != sorted(maxima, reverse=True) and maxima != sorted(maxima)  # not a sorted sweep


def test_a_short_last_batch_stays_last() -> None:
    lengths = np.arange(1, 11)  # 10 rows in one megabatch, batches of 4: [10..7] [6..3] and a short [2, 1]
    for seed in range(5):
        order = LengthGroupedSampler(lengths, 4, seed=seed).order(0)
        batches = [sorted(lengths[order[i : i + 4]].tolist()) for i in range(0, 10, 4)]
        assert batches == [[7, 8, 9, 10], [3, 4, 5, 6], [1, 2]]


def _spec(stage: str = "sft", **keys: object) -> JobSpec:
    return JobSpec.from_mapping({"model_name_or_path": "m", "stage": stage, "dataset": "d", **keys})


def test_length_grouping_is_on_by_default_for_sft_without_packing(tmp_path: Path) -> None:
    out = str(tmp_path)
    assert length_grouping(_spec()) is True
    assert length_grouping(_spec(packing=True)) is False
    assert length_grouping(_spec(neat_packing=True)) is False
    assert length_grouping(_spec(stage="pt")) is False
    assert length_grouping(_spec(group_by_length=False)) is False  # LF's key still decides when set
    assert length_grouping(_spec(stage="pt", group_by_length=True)) is True
    args = build_training_arguments(_spec(output_dir=out))
    assert args.train_sampling_strategy == "group_by_length"
    args = build_training_arguments(_spec(output_dir=out, group_by_length=False))
    assert args.train_sampling_strategy == "random"
    args = build_training_arguments(_spec(output_dir=out, disable_shuffling=True))
    assert args.train_sampling_strategy == "sequential"


def test_trainer_groups_token_rows_by_their_known_lengths(tiny_llama: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, TrainingArguments

    from tunery.engine.tokenize.rows import TokenizedDataset, TokenRows
    from tunery.engine.train.stages.trainer import TuneryTrainer

    rows = TokenRows.from_lists([[1] * n for n in (3, 9, 4, 8)], [[1] * n for n in (3, 9, 4, 8)])
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    grouped = TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=2,
        train_sampling_strategy="group_by_length",
    )
    sampler = TuneryTrainer(model=model, args=grouped, train_dataset=TokenizedDataset(rows))._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert [sorted(rows.lengths[list(sampler)][i : i + 2].tolist()) for i in (0, 2)] == [[8, 9], [3, 4]]
