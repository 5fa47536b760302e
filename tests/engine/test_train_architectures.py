"""Every supported architecture trains a couple of LoRA steps with lora_target all."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.support.train_data import tiny_data_builder, tiny_spec
from tunery.engine.events import EventSink
from tunery.engine.train.runner import run_training
from tunery.spec.events import EXIT_SUCCEEDED, FinishedEvent, LogEvent, parse_event

#: Linear layers of each family's decoder block (phi3 fuses qkv and gate/up).
LINEAR = {
    "llama": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
}


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma", "phi3"])
def test_family_trains_lora_on_all_linear_layers(
    tiny_model_factory: Callable[..., Path], tmp_path: Path, family: str
) -> None:
    stream = io.StringIO()
    spec = tiny_spec(tiny_model_factory(family), tmp_path / "out", max_steps=2)
    code = run_training(spec, EventSink(stream), build_data=tiny_data_builder())
    events = [parse_event(line) for line in stream.getvalue().splitlines()]
    assert code == EXIT_SUCCEEDED, events[-1]
    finished = events[-1]
    assert isinstance(finished, FinishedEvent) and finished.step == 2
    targets = next(e.message for e in events if isinstance(e, LogEvent) and e.message.startswith("lora targets"))
    assert set(targets.split(": ")[1].split(", ")) == LINEAR.get(family, LINEAR["llama"])
    adapter = load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
    assert not any("lm_head" in name for name in adapter)
    assert all(any(f".{name}.lora_B" in key for key in adapter) for name in LINEAR.get(family, LINEAR["llama"]))
