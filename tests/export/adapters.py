"""Tiny adapters for the merge tests, made with peft directly (random, non-zero weights: a merge that drops
or mangles them shows), and helpers to run an export job in-process."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from tunery.engine.events import EventSink
from tunery.engine.export.job import with_export_defaults
from tunery.engine.export.runner import run_export
from tunery.spec import JobSpec
from tunery.spec.events import Event, parse_event

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
#: token ids the logits are compared on (inside every tiny vocabulary)
IDS = torch.tensor([[5, 17, 42, 99, 7, 300, 12, 1500]])


def make_lora(base: Path, folder: Path, *, seed: int, dora: bool = False) -> Path:
    """A LoRA (or DoRA) adapter of ``base`` with random A and B (peft's init makes B zero: no effect)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, use_dora=dora, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    if dora:  # DoRA's magnitude starts at the weight norms: move it, so the magnitude vector matters too
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_magnitude_vector" in name:
                    param.mul_(1 + 0.1 * torch.rand_like(param))
    peft_model.save_pretrained(str(folder))
    return folder


def make_pissa(base: Path, folder: Path, *, seed: int) -> tuple[Path, torch.Tensor]:
    """A PiSSA adapter as training saves it (tunery.engine.train.methods.lora: initialised by SVD, 'trained',
    then converted to a plain LoRA for the original base), and the trained model's logits on ``IDS``."""
    from tunery.engine.train.methods.lora import PISSA_INIT_DIR, pissa_converting_saver

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights="pissa")
    peft_model: Any = get_peft_model(model, config)
    folder.mkdir(parents=True, exist_ok=True)
    save = pissa_converting_saver(peft_model, folder / PISSA_INIT_DIR)
    with torch.no_grad():  # stands for training: every adapter weight moves
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.add_(0.05 * torch.randn_like(param))
    peft_model.eval()
    with torch.no_grad():
        logits = peft_model(input_ids=IDS).logits
    save(peft_model, folder)
    return folder, logits


def base_with_adapters(base: Path, adapters: list[Path]) -> Any:
    """The base with every adapter active at once, unmerged (peft adds each adapter's path): for LoRA this is
    what merging them in sequence must equal."""
    model: Any = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapters[0]))
    names = ["default"]
    for index, path in enumerate(adapters[1:], start=1):
        model.load_adapter(str(path), adapter_name=f"a{index}")
        names.append(f"a{index}")
    model.base_model.set_adapter(names)
    return model.eval()


def logits_of(model: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits  # type: ignore[no-any-return]


def export_spec(base: Path, export_dir: Path, **keys: Any) -> JobSpec:
    flat = {"model_name_or_path": str(base), "template": "llama3", "export_dir": str(export_dir), **keys}
    return JobSpec.from_mapping(with_export_defaults(flat))


def run(spec: JobSpec, **kwargs: Any) -> tuple[int, list[Event]]:
    stream = io.StringIO()
    code = run_export(spec, EventSink(stream), **kwargs)
    return code, [parse_event(line) for line in stream.getvalue().splitlines()]
