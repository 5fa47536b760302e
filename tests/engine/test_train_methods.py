"""Fine-tuning methods: each learns, and exactly the intended parameters change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.train_data import tiny_data_builder, tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.errors import TrainingError
from tunery.engine.train.runner import TrainingSession, setup_training
from tunery.spec.events import ProgressEvent

FOX = ["The quick brown fox jumps over the lazy dog."]
LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@dataclass
class Trained:
    session: TrainingSession
    losses: list[float]
    names: set[str]
    changed: set[str]
    before: dict[str, torch.Tensor]


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def setup(model_dir: Path, tmp_path: Path, **keys: Any) -> TrainingSession:
    spec = tiny_spec(model_dir, tmp_path / "out", **{"max_steps": 8, **keys})
    return setup_training(spec, EventSink(), CancelRequest(), build_data=tiny_data_builder(repeat=8, texts=FOX))


def train(model_dir: Path, tmp_path: Path, **keys: Any) -> Trained:
    session = setup(model_dir, tmp_path, **keys)
    sink = EventSink()
    for callback in session.trainer.callback_handler.callbacks:
        if hasattr(callback, "sink"):
            callback.sink = sink
    before = snapshot(session.prepared.model)
    session.trainer.train()
    after = snapshot(session.prepared.model)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    losses = [event.loss for event in sink.events if isinstance(event, ProgressEvent) and event.loss is not None]
    return Trained(session, losses, set(before), changed, before)


def assert_learns(losses: list[float]) -> None:
    assert len(losses) == 8
    assert losses[-1] < losses[0] - 0.3, losses


def where(names: set[str], test: Callable[[str], bool]) -> set[str]:
    return {name for name in names if test(name)}


# ---- LoRA ----


def test_lora_trains_only_adapter_weights_on_every_linear_layer(tiny_llama: Path, tmp_path: Path) -> None:
    run = train(tiny_llama, tmp_path, learning_rate=5e-3)
    assert_learns(run.losses)
    lora = where(run.names, lambda n: "lora_" in n)
    assert run.changed == lora  # base weights untouched, every adapter weight moved
    wrapped = {n.split(".lora_")[0].split(".")[-1] for n in lora}
    assert wrapped == LINEAR  # lora_target all = every linear layer ...
    assert not any("lm_head" in n for n in lora)  # ... except the output head
    prepared = run.session.prepared
    assert prepared.trainable_params == sum(run.before[n].numel() for n in lora)
    assert prepared.total_params > prepared.trainable_params
    config = prepared.model.peft_config["default"]  # type: ignore[index]
    assert config.r == 8 and config.lora_alpha == 16  # alpha defaults to 2 * rank


def test_lora_target_list_and_additional_target(tiny_llama: Path, tmp_path: Path) -> None:
    run = train(tiny_llama, tmp_path, learning_rate=5e-3, lora_target="q_proj,v_proj", additional_target="lm_head")
    assert_learns(run.losses)
    wrapped = {n.split(".lora_")[0].split(".")[-1] for n in run.changed if "lora_" in n}
    assert wrapped == {"q_proj", "v_proj"}
    saved = where(run.changed, lambda n: "modules_to_save" in n)
    assert saved and all("lm_head" in n for n in saved)
    assert run.changed == where(run.names, lambda n: "lora_" in n) | saved


def test_unknown_lora_target_is_a_spec_error_listing_choices(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError) as caught:
        setup(tiny_llama, tmp_path, lora_target="qkv")
    assert caught.value.code == "invalid_spec"
    assert "lora_target" in caught.value.message and "q_proj" in caught.value.message


def test_dora_trains_magnitude_and_adapters(tiny_llama: Path, tmp_path: Path) -> None:
    run = train(tiny_llama, tmp_path, learning_rate=5e-3, use_dora=True)
    assert_learns(run.losses)
    magnitudes = where(run.names, lambda n: "lora_magnitude_vector" in n)
    assert magnitudes and magnitudes <= run.changed
    assert run.changed == where(run.names, lambda n: "lora_" in n)


def test_rslora_scales_by_square_root_of_rank(tiny_llama: Path, tmp_path: Path) -> None:
    run = train(tiny_llama, tmp_path, learning_rate=5e-3, use_rslora=True, lora_rank=4, lora_alpha=8)
    assert_learns(run.losses)
    layer = run.session.prepared.model.base_model.model.model.layers[0].self_attn.q_proj  # type: ignore[union-attr]
    assert layer.scaling["default"] == pytest.approx(8 / 4**0.5)


def test_pissa_moves_principal_part_into_adapter(tiny_llama: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    original = load_file(str(tiny_llama / "model.safetensors"))
    run = train(tiny_llama, tmp_path, learning_rate=5e-3, pissa_init=True, pissa_iter=-1)
    assert_learns(run.losses)
    assert run.changed == where(run.names, lambda n: "lora_" in n)
    name = "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    residual = run.before[name]
    assert not torch.allclose(residual, original["model.layers.0.self_attn.q_proj.weight"])
    a = run.before["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"]
    b = run.before["base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"]
    scaling = 16 / 8  # lora_alpha / lora_rank
    assert torch.allclose(residual + scaling * b @ a, original["model.layers.0.self_attn.q_proj.weight"], atol=1e-5)


def test_loraplus_gives_b_matrices_a_higher_learning_rate(tiny_llama: Path, tmp_path: Path) -> None:
    run = train(tiny_llama, tmp_path, learning_rate=5e-3, loraplus_lr_ratio=4.0)
    assert_learns(run.losses)
    optimizer = run.session.trainer.optimizer
    assert optimizer is not None
    model = run.session.prepared.model
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(p)]: group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}
    assert sorted({lr for n, lr in lr_of.items() if "lora_A" in n}) == pytest.approx([5e-3])
    assert sorted({lr for n, lr in lr_of.items() if "lora_B" in n}) == pytest.approx([2e-2])


# ---- freeze ----


def layer_params(names: set[str], layers: set[int], module: str = "") -> set[str]:
    return {n for n in names for i in layers if f".layers.{i}.{module}" in n}


def test_freeze_trains_last_n_layers(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    run = train(tiny_model_factory("llama", 3), tmp_path, finetuning_type="freeze", learning_rate=1e-3,
                freeze_trainable_layers=1)
    assert_learns(run.losses)
    assert run.changed == layer_params(run.names, {2})


def test_freeze_negative_trains_first_n_layers(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    run = train(tiny_model_factory("llama", 3), tmp_path, finetuning_type="freeze", learning_rate=1e-3,
                freeze_trainable_layers=-1)
    assert_learns(run.losses)
    assert run.changed == layer_params(run.names, {0})


def test_freeze_module_filter_and_extra_modules(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    run = train(tiny_model_factory("llama", 3), tmp_path, finetuning_type="freeze", learning_rate=1e-3,
                freeze_trainable_layers=2, freeze_trainable_modules="mlp", freeze_extra_modules="norm")
    assert_learns(run.losses)
    assert run.changed == layer_params(run.names, {1, 2}, "mlp.") | {"model.norm.weight"}


def test_freeze_unknown_module_lists_choices(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError) as caught:
        setup(tiny_llama, tmp_path, finetuning_type="freeze", freeze_trainable_modules="attention")
    assert caught.value.code == "invalid_spec"
    assert "freeze_trainable_modules" in caught.value.message and "self_attn" in caught.value.message


# ---- full ----


def test_full_trains_every_parameter(tiny_llama: Path, tmp_path: Path) -> None:
    run = train(tiny_llama, tmp_path, finetuning_type="full", learning_rate=1e-3)
    assert_learns(run.losses)
    assert run.changed == run.names
    assert run.session.prepared.trainable_params == run.session.prepared.total_params


def test_adapters_to_start_from_are_lora_only(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError) as caught:
        setup(tiny_llama, tmp_path, finetuning_type="full", adapter_name_or_path=str(tmp_path))
    assert "adapter_name_or_path" in caught.value.message


def test_sft_token_accuracy_counts_only_answer_tokens() -> None:
    import numpy as np
    from transformers import EvalPrediction

    from tunery.engine.train.stages.sft import token_accuracy

    labels = np.array([[-100, -100, 2, 3, 4], [-100, 5, 6, -100, -100]])
    predicted = np.array([[9, 2, 3, 7, 0], [5, 6, 1, 1, 1]])  # position t predicts label t + 1
    assert token_accuracy(EvalPrediction(predictions=predicted, label_ids=labels)) == {"accuracy": 4 / 5}
