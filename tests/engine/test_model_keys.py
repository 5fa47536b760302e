"""Model-loading keys honoured by engine/train/model.py: moe_aux_loss_coef (the router's load-balancing loss of a
mixture-of-experts model joins the loss, as in LLaMA-Factory) and hf_hub_token (passed to every hub download)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.support.tiny_models import build_tokenizer
from tunery.engine.train.model import load_frozen_model, load_model, load_tokenizer
from tunery.spec import JobSpec


@pytest.fixture(scope="module")
def tiny_mixtral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Mixtral (4 experts, 2 per token) built from its config, with a tiny tokenizer."""
    from transformers import MixtralConfig, MixtralForCausalLM

    folder = Path(tmp_path_factory.mktemp("tiny-mixtral"))
    tokenizer = build_tokenizer(folder, "llama")
    config = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    MixtralForCausalLM(config).save_pretrained(folder)
    return folder


def _spec(model: Path, **keys: Any) -> JobSpec:
    return JobSpec.from_mapping({"model_name_or_path": str(model), "dataset": "d", "template": "llama3", **keys})


def _loss_parts(spec: JobSpec) -> tuple[Any, torch.Tensor, torch.Tensor]:
    tokenizer = load_tokenizer(spec.model)
    model = load_model(spec, tokenizer).model
    model.eval()  # no dropout: the loss is a pure function of the weights
    ids = torch.tensor([tokenizer.encode("The quick brown fox jumps over the lazy dog.")])
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    cross_entropy = F.cross_entropy(out.logits[0, :-1].float(), ids[0, 1:])
    return out, cross_entropy, ids


def test_moe_aux_loss_coef_adds_the_router_loss(tiny_mixtral: Path) -> None:
    spec = _spec(tiny_mixtral, moe_aux_loss_coef=0.5)
    out, cross_entropy, _ = _loss_parts(spec)
    assert out.aux_loss is not None and float(out.aux_loss) > 0
    assert float(out.loss) == pytest.approx(float(cross_entropy) + 0.5 * float(out.aux_loss), rel=1e-5)


def test_without_moe_aux_loss_coef_the_loss_is_cross_entropy(tiny_mixtral: Path) -> None:
    out, cross_entropy, _ = _loss_parts(_spec(tiny_mixtral))
    assert out.aux_loss is None  # Mixtral's config keeps router logits off by default
    assert float(out.loss) == pytest.approx(float(cross_entropy), rel=1e-5)


def test_moe_config_values_for_the_trained_model_only(tiny_mixtral: Path) -> None:
    spec = _spec(tiny_mixtral, moe_aux_loss_coef=0.25)
    tokenizer = load_tokenizer(spec.model)
    trained = load_model(spec, tokenizer).model
    assert trained.config.output_router_logits is True
    assert trained.config.router_aux_loss_coef == 0.25
    frozen = load_frozen_model(spec, tokenizer)  # a reference model is not trained: LF leaves it alone too
    assert frozen.config.output_router_logits is False


def test_moe_aux_loss_coef_on_a_dense_model_warns(tiny_llama: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = _spec(tiny_llama, moe_aux_loss_coef=0.5)
    with caplog.at_level(logging.WARNING, logger="tunery.engine.train.model"):
        model = load_model(spec, load_tokenizer(spec.model)).model
    assert "moe_aux_loss_coef has no effect: llama models have no router load-balancing loss" in caplog.text
    assert not getattr(model.config, "output_router_logits", False)


def test_hf_hub_token_reaches_every_download(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seen: list[tuple[str, Any]] = []

    def spy(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, kwargs.get("token")))
            return original(*args, **kwargs)

        return call

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", spy("tokenizer", AutoTokenizer.from_pretrained))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy("model", AutoModelForCausalLM.from_pretrained))
    spec = _spec(tiny_llama, hf_hub_token="hf_secret")
    load_model(spec, load_tokenizer(spec.model))
    assert seen == [("tokenizer", "hf_secret"), ("model", "hf_secret")]
