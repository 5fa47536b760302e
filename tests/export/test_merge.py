"""The merged model an export writes (fp32, tiny models): its logits equal base + adapter(s) for LoRA, DoRA,
PiSSA and two LoRA adapters merged in sequence; shards, legacy .bin files, dtype, tokenizer, chat template and
generation config are saved as asked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.export.adapters import base_with_adapters, export_spec, logits_of, make_lora, make_pissa, run
from tunery.engine.data.types import Message, Role
from tunery.engine.export import merge
from tunery.engine.templates import get_template
from tunery.spec.events import EXIT_SUCCEEDED, ArtifactEvent
from tunery.spec.export import ExportSection

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def adapters(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("adapters")
    pissa, pissa_logits = make_pissa(tiny_llama, root / "pissa", seed=3)
    return {
        "lora": make_lora(tiny_llama, root / "lora", seed=1),
        "lora2": make_lora(tiny_llama, root / "lora2", seed=2),
        "dora": make_lora(tiny_llama, root / "dora", seed=4, dora=True),
        "pissa": pissa,
        "pissa_logits": pissa_logits,
    }


def export_and_load(base: Path, out: Path, **keys: Any) -> tuple[Any, ArtifactEvent]:
    code, events = run(export_spec(base, out, **keys))
    assert code == EXIT_SUCCEEDED, events[-1]
    model_artifact = next(e for e in events if isinstance(e, ArtifactEvent) and e.format == "hf")
    model: Any = AutoModelForCausalLM.from_pretrained(out)
    return model.eval(), model_artifact


def assert_close(merged: torch.Tensor, reference: torch.Tensor) -> None:
    diff = float((merged - reference).abs().max())
    print(f"max logit difference merged vs base + adapters: {diff:.2e}")
    assert diff < TOLERANCE


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_merged_logits_equal_base_plus_adapter(
    kind: str, tiny_llama: Path, adapters: dict[str, Any], tmp_path: Path
) -> None:
    adapter = adapters[kind]
    reference = logits_of(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), adapter).eval())
    merged, artifact = export_and_load(tiny_llama, tmp_path / "out", adapter_name_or_path=str(adapter))
    assert not torch.allclose(reference, logits_of(AutoModelForCausalLM.from_pretrained(tiny_llama)), atol=1e-3)
    assert_close(logits_of(merged), reference)
    assert artifact.path == "." and artifact.serve_engine == "hf"
    assert artifact.checks["max_logit_diff"] < TOLERANCE  # the export's own check agrees


def test_pissa_adapter_merges_into_the_original_base(
    tiny_llama: Path, adapters: dict[str, Any], tmp_path: Path
) -> None:
    assert json.loads((adapters["pissa"] / "adapter_config.json").read_text())["r"] == 8  # converted, rank doubled
    merged, _ = export_and_load(tiny_llama, tmp_path / "out", adapter_name_or_path=str(adapters["pissa"]))
    assert_close(logits_of(merged), adapters["pissa_logits"])  # the model as it was trained


def test_two_adapters_merge_in_sequence(tiny_llama: Path, adapters: dict[str, Any], tmp_path: Path) -> None:
    pair = [adapters["lora"], adapters["lora2"]]
    reference = logits_of(base_with_adapters(tiny_llama, pair))
    one = logits_of(base_with_adapters(tiny_llama, pair[:1]))
    merged, artifact = export_and_load(tiny_llama, tmp_path / "out", adapter_name_or_path=",".join(map(str, pair)))
    assert not torch.allclose(reference, one, atol=1e-3)  # the second adapter counts
    assert_close(logits_of(merged), reference)
    assert artifact.checks["max_logit_diff"] < TOLERANCE


def test_full_fine_tune_is_exported_as_is(tiny_llama: Path, tmp_path: Path) -> None:
    _, artifact = export_and_load(tiny_llama, tmp_path / "out")
    saved, original = (
        load_file(str(tmp_path / "out" / "model.safetensors")),
        load_file(str(tiny_llama / "model.safetensors")),
    )
    assert saved.keys() == original.keys() and all(torch.equal(saved[k], original[k]) for k in saved)
    assert "max_logit_diff" not in artifact.checks  # nothing was merged


def test_shard_size_is_export_size_in_gb() -> None:
    assert merge.shard_size(ExportSection(export_size=5)) == "5GB"
    assert merge.shard_size(ExportSection(export_size=1)) == "1GB"


@pytest.fixture
def kilobyte_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """export_size in KB instead of GB: the tiny model (1.4 MB) then spans several shards."""
    monkeypatch.setattr(merge, "shard_size", lambda export: f"{export.export_size}KB")


@pytest.mark.usefixtures("kilobyte_shards")
@pytest.mark.parametrize("legacy", [False, True])
def test_shards_of_export_size_and_legacy_bin(
    legacy: bool, tiny_llama: Path, adapters: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "model.safetensors").parent.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"stale weights of an earlier export")
    keys = {"adapter_name_or_path": str(adapters["lora"]), "export_size": 600, "export_legacy_format": legacy}
    merged, _ = export_and_load(tiny_llama, out, **keys)
    suffix, index_name = (
        (".bin", "pytorch_model.bin.index.json") if legacy else (".safetensors", "model.safetensors.index.json")
    )
    shards = sorted(path for path in out.iterdir() if path.suffix == suffix)
    index = json.loads((out / index_name).read_text())
    assert len(shards) > 1 and {path.name for path in shards} == set(index["weight_map"].values())
    assert all(path.stat().st_size <= 600 * 1000 * 1.01 for path in shards)
    assert not list(out.glob("*.safetensors" if legacy else "*.bin")) and not (out / "model.safetensors").exists()
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), adapters["lora"]).eval()
    assert_close(logits_of(merged), logits_of(reference))


def test_legacy_single_file(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    merged, _ = export_and_load(tiny_llama, out, export_legacy_format=True)
    assert (out / "pytorch_model.bin").is_file() and not list(out.glob("*.safetensors"))
    assert_close(logits_of(merged), logits_of(AutoModelForCausalLM.from_pretrained(tiny_llama)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_infer_dtype_is_the_saved_dtype(dtype: str, tiny_llama: Path, adapters: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_keys = {"adapter_name_or_path": str(adapters["lora"]), "infer_dtype": dtype}
    code, events = run(export_spec(tiny_llama, out, **run_keys))
    assert code == EXIT_SUCCEEDED, events[-1]
    assert json.loads((out / "config.json").read_text())["dtype"] == dtype
    assert {tensor.dtype for tensor in load_file(str(out / "model.safetensors")).values()} == {getattr(torch, dtype)}


def test_auto_dtype_keeps_the_stored_dtype(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    stored = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model_factory("qwen2"), dtype=torch.bfloat16).save_pretrained(stored)
    AutoTokenizer.from_pretrained(tiny_model_factory("qwen2")).save_pretrained(stored)
    code, events = run(export_spec(stored, tmp_path / "out", template="qwen"))
    assert code == EXIT_SUCCEEDED, events[-1]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"


def test_tokenizer_template_and_generation_config(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    keys = {"do_sample": False, "max_new_tokens": 77, "repetition_penalty": 1.1, "cutoff_len": 512}
    code, events = run(export_spec(tiny_llama, out, **keys))
    assert code == EXIT_SUCCEEDED, events[-1]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.padding_side == "left" and tokenizer.model_max_length == 512  # as LF's export
    template = get_template("llama3", tokenizer)
    messages = [Message(Role.USER, "Hi there")]
    hf = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi there"}], tokenize=False, add_generation_prompt=True
    )
    assert hf == template.render_prompt(messages)
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 77 and generation["repetition_penalty"] == 1.1
    assert generation["do_sample"] is False and "temperature" not in generation  # greedy: no sampling values
    assert tokenizer.convert_tokens_to_ids("<|eot_id|>") in generation["eos_token_id"]

    sampled = tmp_path / "sampled"
    code, _ = run(export_spec(tiny_llama, sampled, temperature=0.6, top_p=0.9, top_k=20))
    values = json.loads((sampled / "generation_config.json").read_text())
    assert (values["temperature"], values["top_p"], values["top_k"]) == (0.6, 0.9, 20)
