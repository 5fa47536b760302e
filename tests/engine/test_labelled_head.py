"""The labelled head gives TRL's preference trainers the same per-token values and gradients as TRL's own fused
LM head, on a tiny model with right padding and masked prompts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from tunery.engine.train.stages.labelled_head import use_labelled_head


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("temperature", [1.0, 0.7])  # GRPO scores samples at its sampling temperature
def test_same_values_and_gradients_as_trls_fused_head(tiny_llama: Path, temperature: float) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    ours = copy.deepcopy(base)
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1", "log_sum_sq_probs")
    add_fused_lm_head(base, temperature=temperature, outputs=outputs)
    add_fused_lm_head(ours, outputs=outputs)
    use_labelled_head(ours, temperature)

    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 500, (3, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0  # right padding
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :4] = -100  # the prompt

    got = {}
    for name, model in (("trl", base), ("ours", ours)):
        model.zero_grad()
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
        out.log_probs.sum().backward()
        head = model.get_output_embeddings().weight.grad
        got[name] = (out, head.clone(), model.model.embed_tokens.weight.grad.clone())

    (trl, trl_head, trl_embed), (mine, my_head, my_embed) = got["trl"], got["ours"]
    assert bool(mine.label_mask.eq(trl.label_mask).all()) and int(mine.label_mask.sum()) == 2 * 8 + 5
    for field in ("log_probs", "entropy", "mean_logits", "log_sum_sq_probs"):
        torch.testing.assert_close(getattr(mine, field), getattr(trl, field), atol=1e-5, rtol=1e-5, msg=field)
    assert bool(mine.is_top1.eq(trl.is_top1).all())
    torch.testing.assert_close(mine.loss, trl.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(my_head, trl_head, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(my_embed, trl_embed, atol=1e-5, rtol=1e-4)


def test_other_calls_keep_the_models_own_forward(tiny_llama: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    plain = model(input_ids=torch.tensor([[5, 6, 7]])).logits
    add_fused_lm_head(model)
    use_labelled_head(model)
    torch.testing.assert_close(model(input_ids=torch.tensor([[5, 6, 7]])).logits, plain)
    generated = model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=2, do_sample=False)
    assert generated.shape == (1, 5)
