"""The trainer's loss on labelled positions only: same loss and gradients as transformers' plain path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tunery.engine.train.stages import loss as loss_module
from tunery.engine.train.stages.loss import cross_entropy_sum, next_token_targets, without_padding_mask
from tunery.engine.train.stages.trainer import TuneryTrainer

PAD = 0


def _model(folder: Path, lora: bool) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    if lora:
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0)
        model = get_peft_model(model, config)
        for name, param in model.named_parameters():  # non-zero B: the adapters change the output
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.05)
    model.train()
    return model


def _trainer(model: Any, tmp_path: Path, labelled: bool) -> TuneryTrainer:
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=3)
    return TuneryTrainer(model=model, args=args, labelled_loss=labelled)


def _batch(vocab: int, lengths: list[int], seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded rows; the first third of each row is 'prompt' (label -100), padding too."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    labels = torch.full((len(lengths), width), -100)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(5, vocab, (length,), generator=generator)
        mask[row, :length] = 1
        labels[row, length // 3 : length] = ids[row, length // 3 : length]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss_and_grads(trainer: TuneryTrainer, model: Any, batch: dict[str, Any], items: Any) -> tuple[Any, list[Any]]:
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=items)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad and p.grad is not None]
    return loss.detach(), grads


@pytest.mark.parametrize("lora", [True, False])
@pytest.mark.parametrize("with_items", [True, False])
def test_labelled_loss_equals_the_models_own_loss_and_gradients(
    tiny_llama: Path, tmp_path: Path, lora: bool, with_items: bool
) -> None:
    model = _model(tiny_llama, lora)
    batch = _batch(model.config.vocab_size, [23, 17, 9])
    items = (batch["labels"][:, 1:] != -100).sum() if with_items else None

    fast = _trainer(model, tmp_path, labelled=True)
    loss, grads = _loss_and_grads(fast, model, batch, items)
    assert fast.last_loss_labelled_only  # the head really saw the labelled positions only

    # reference: the model's own loss on every position, with the padding mask (transformers' path)
    model.zero_grad()
    reference = model(**batch, num_items_in_batch=items) if with_items else model(**batch)
    reference.loss.backward()
    expected = [p.grad.clone() for p in model.parameters() if p.requires_grad and p.grad is not None]

    assert torch.allclose(loss, reference.loss.detach(), rtol=1e-5, atol=1e-6)
    assert len(grads) == len(expected) > 0
    for got, want in zip(grads, expected, strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_plain_path_is_kept_for_evaluation_and_on_request(tiny_llama: Path, tmp_path: Path) -> None:
    model = _model(tiny_llama, lora=False)
    batch = _batch(model.config.vocab_size, [12, 7])
    fast = _trainer(model, tmp_path, labelled=True)
    assert fast._head is not None
    model.eval()
    _loss, outputs = fast.compute_loss(model, dict(batch), return_outputs=True)
    assert not fast.last_loss_labelled_only
    assert outputs.logits.shape[:2] == batch["input_ids"].shape  # full logits for metrics
    model.train()
    plain = _trainer(model, tmp_path, labelled=False)
    assert plain._head is None
    with torch.no_grad():
        assert torch.allclose(plain.compute_loss(model, dict(batch)), model(**batch).loss, atol=1e-6)


def test_fused_cross_entropy_matches_torch_in_one_and_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(37, 50, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (37,), generator=generator)
    expected = F.cross_entropy(logits, targets, reduction="sum")
    (expected_grad,) = torch.autograd.grad(expected * 0.5, logits)
    for chunk_elements in (1 << 24, 50 * 5):  # one chunk, then 5 rows per chunk (8 chunks)
        monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", chunk_elements)
        got = cross_entropy_sum(logits, targets)
        (grad,) = torch.autograd.grad(got * 0.5, logits)
        assert torch.allclose(got.double(), expected, rtol=1e-6)
        assert torch.allclose(grad, expected_grad, atol=1e-6)


def test_fused_cross_entropy_backward_runs_once() -> None:
    logits = torch.randn(4, 6, requires_grad=True)
    loss = cross_entropy_sum(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


def test_next_token_targets_pair_each_position_with_the_next_label() -> None:
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, 5, -100, 6, 9]])
    mask, targets = next_token_targets(labels)
    assert mask.tolist() == [[False, True, True, False, False], [True, False, True, True, False]]
    assert targets.tolist() == [7, 8, 5, 6, 9]


def test_padding_mask_is_dropped_only_where_it_changes_nothing(tiny_llama: Path) -> None:
    right = _batch(100, [6, 4])
    assert "attention_mask" not in without_padding_mask(right)
    left = {**right, "attention_mask": right["attention_mask"].flip(1)}
    assert without_padding_mask(left) is left
    packed = {**right, "position_ids": torch.tensor([[0, 1, 2, 0, 1, 2], [0, 1, 0, 1, 0, 0]])}
    kept = without_padding_mask(packed)
    assert kept["attention_mask"].eq(1).all() and kept["position_ids"] is packed["position_ids"]
    trained_padding = {**right, "labels": torch.where(right["attention_mask"] == 0, PAD, right["labels"])}
    assert without_padding_mask(trained_padding) is trained_padding  # ignore_pad_token_for_loss: false

    model = _model(tiny_llama, lora=False).eval()
    batch = _batch(model.config.vocab_size, [11, 6, 3])
    with torch.no_grad():
        masked = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        unmasked = model(**{k: v for k, v in without_padding_mask(batch).items() if k != "labels"}).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(masked[real], unmasked[real], atol=1e-5)  # every real token sees the same context
