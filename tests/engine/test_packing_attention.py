"""Neat packing really isolates sequences: a packed batch gives the same per-token losses as the
same sequences run one by one (tiny llama, sdpa and eager attention)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import torch

from tunery.engine.tokenize.collate import PackedCollator, PaddingCollator
from tunery.engine.tokenize.packing import pack_rows
from tunery.engine.tokenize.rows import IGNORE_INDEX, TokenRows

LENGTHS = [9, 4, 13, 6, 11, 3, 7]
CAPACITY = 20


def _model(folder: Path, attn: str) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attn, dtype=torch.float32)
    model.eval()
    assert model.config.use_cache  # the collator itself must turn the kv-cache off
    return model


def _sequences(vocab: int) -> TokenRows:
    generator = torch.Generator().manual_seed(0)
    ids = [torch.randint(10, vocab, (n,), generator=generator).tolist() for n in LENGTHS]
    labels = [[IGNORE_INDEX] * 2 + seq[2:] for seq in ids]  # a masked "prompt" of 2 tokens
    return TokenRows.from_lists(ids, labels)


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Loss of each position predicting the next label (0 where the next label is ignored)."""
    shifted = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    return torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="none"
    )


def _unpacked_losses(model: Any, rows: TokenRows) -> dict[tuple[int, ...], torch.Tensor]:
    """Per-token losses of every sequence run alone, keyed by its ids."""
    losses = {}
    for i in range(len(rows)):
        item = rows.row(i)
        ids = torch.tensor([item["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        losses[tuple(item["input_ids"])] = _token_losses(logits, torch.tensor([item["labels"]]))[0]
    return losses


def _packed_losses(model: Any, batch: dict[str, Any]) -> list[tuple[tuple[int, ...], torch.Tensor]]:
    """Per-token losses of each packed sequence, found by its restarting position_ids."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        logits = model(**inputs).logits
    losses = _token_losses(logits, batch["labels"])
    found = []
    for row in range(batch["input_ids"].shape[0]):
        positions = batch["position_ids"][row].tolist()
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for a, b in pairwise(starts):
            found.append((tuple(batch["input_ids"][row, a:b].tolist()), losses[row, a:b]))
    return found


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("flatten", [False, True])
def test_packed_batch_gives_the_unpacked_losses(tiny_llama: Path, attn: str, flatten: bool) -> None:
    model = _model(tiny_llama, attn)
    rows = _sequences(model.config.vocab_size)
    packed, dropped = pack_rows(rows, CAPACITY, neat=True)
    assert dropped == 0 and len(packed) < len(rows)
    batch = PackedCollator(pad_token_id=0, pad_to_multiple_of=8, flatten=flatten)(
        [packed.row(i) for i in range(len(packed))]
    )
    expected = _unpacked_losses(model, rows)
    found = [(ids, loss) for ids, loss in _packed_losses(model, batch) if ids in expected]
    assert sorted(ids for ids, _ in found) == sorted(expected)
    for ids, loss in found:
        # the last token's loss differs by construction (unpacked: nothing to predict; packed: the
        # next label is the following sequence's first label, which neat packing masks) -> also 0
        torch.testing.assert_close(loss, expected[ids], rtol=1e-4, atol=1e-5)

    # and the model's own mean loss over the batch equals the mean over the unpacked tokens
    with torch.no_grad():
        packed_loss = model(**batch).loss
    all_expected = torch.cat(list(expected.values()))
    trained = sum(int((torch.tensor(rows.row(i)["labels"][1:]) != IGNORE_INDEX).sum()) for i in range(len(rows)))
    torch.testing.assert_close(packed_loss, all_expected.sum() / trained, rtol=1e-4, atol=1e-5)


def test_without_position_restarts_sequences_leak(tiny_llama: Path) -> None:
    """Control: the same packed rows with a plain attention mask see each other and lose equality."""
    model = _model(tiny_llama, "sdpa")
    rows = _sequences(model.config.vocab_size)
    packed, _ = pack_rows(rows, CAPACITY, neat=True)
    features = [packed.row(i) for i in range(len(packed))]
    leaky = PaddingCollator(pad_token_id=0)(features)
    del leaky["position_ids"]
    expected = _unpacked_losses(model, rows)
    with torch.no_grad():
        logits = model(input_ids=leaky["input_ids"], attention_mask=leaky["attention_mask"]).logits
    losses = _token_losses(logits, leaky["labels"])
    differs = False
    for row, feature in enumerate(features):
        positions = feature["position_ids"]
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for a, b in pairwise(starts[1:]):  # sequences after the first in a row
            ids = tuple(feature["input_ids"][a:b])
            differs |= not torch.allclose(losses[row, a:b], expected[ids], rtol=1e-4, atol=1e-5)
    assert differs
