"""ONNX export through optimum-onnx in .venv-onnx (deploy/setup_onnx.sh, `make install`): the exported folder runs
in plain onnxruntime with past key values and greedy-decodes the same tokens as the HF model it came from."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunery.engine.export.onnx import ONNX_PYTHON_ENV, default_onnx_python, preflight, write_onnx
from tunery.engine.export.onnx_export_script import normalise_config
from tunery.engine.export.types import VERIFY_TOKENS, ExportContext
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
TOKENIZER_TEXTS = (
    "Hello world! It's 2024, isn't it?  Two  spaces\tand a tab.\nNew line.",
    "<|im_start|>user\nWhat is 3 + 4?<|im_end|>\n<|im_start|>assistant\n<think>",
    "中文也可以吗？ émigré naïve — “quotes” 🚀",
)
needs_exporter = pytest.mark.skipif(
    not os.access(default_onnx_python(), os.X_OK),
    reason="optimum-onnx is not installed: run `make install` (deploy/setup_onnx.sh, .venv-onnx)",
)

#: plain onnxruntime (no optimum): the graph's inputs, then greedy decoding feeding the present key values back
ORT_GREEDY = r"""
import json, sys
import numpy as np, onnxruntime as ort
folder, prompts, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
session = ort.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
inputs = {i.name: i for i in session.get_inputs()}
outputs = [o.name for o in session.get_outputs()]
cfg = json.load(open(folder + "/config.json"))
heads = cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
past_names = [n for n in inputs if n.startswith("past_key_values.")]
produced = []
for prompt in prompts:
    past = {n: np.zeros((1, heads, 0, head_dim), dtype=np.float32) for n in past_names}
    ids, tokens, length = list(prompt), [], 0
    while len(tokens) < count:
        feed = {"input_ids": np.array([ids], dtype=np.int64),
                "attention_mask": np.ones((1, length + len(ids)), dtype=np.int64), **past}
        if "position_ids" in inputs:
            feed["position_ids"] = np.arange(length, length + len(ids), dtype=np.int64)[None]
        result = dict(zip(outputs, session.run(outputs, feed)))
        length += len(ids)
        ids = [int(result["logits"][0, -1].argmax())]
        tokens.append(ids[0])
        past = {n: result[n.replace("past_key_values", "present")] for n in past_names}
    produced.append(tokens)
print(json.dumps({"inputs": sorted(inputs), "outputs": outputs, "produced": produced}))
"""

TOKENIZE = r"""
import json, sys
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
print(json.dumps([tokenizer(t)["input_ids"] for t in json.loads(sys.argv[2])]))
"""


def onnx_venv(code: str, *args: str) -> Any:
    """Run ``code`` with the exporter's python (onnxruntime and transformers 4 live there); its JSON output."""
    done = subprocess.run(
        [default_onnx_python(), "-I", "-c", code, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_context(model_dir: Path, export_dir: Path, verify: bool = True) -> tuple[ExportContext, list[str]]:
    """An ExportContext as the export runner builds it: merged model = ``model_dir``, reference tokens from
    transformers' greedy decoding."""
    spec = JobSpec.model_validate(
        {
            "model": {"model_name_or_path": str(model_dir)},
            "export": {"export_dir": str(export_dir), "export_formats": ["onnx"], "export_verify": verify},
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompts = [[int(i) for i in tokenizer(text)["input_ids"]] for text in PROMPTS]
    reference = greedy_tokens(model, prompts)
    # the engine's reference is transformers' own greedy decoding (up to the first end token, where generate stops)
    eos = model.generation_config.eos_token_id
    for prompt, tokens in zip(prompts, reference, strict=True):
        generated = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            do_sample=False,
            max_new_tokens=VERIFY_TOKENS,
        )[0, len(prompt) :].tolist()
        stop = tokens.index(eos) + 1 if eos in tokens else len(tokens)
        assert generated == tokens[:stop]
    export_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    ctx = ExportContext(
        spec=spec,
        merged_dir=model_dir,
        export_dir=export_dir,
        cancel=CancelRequest(),
        log=lines.append,
        verify_prompts=prompts,
        verify_reference=reference,
    )
    return ctx, lines


@pytest.fixture(scope="module")
def qwen2_long_rope(tiny_model_factory: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny qwen2 with Qwen2's real rope_theta (1e6): transformers 5 saves it inside ``rope_parameters``, where
    transformers 4 does not look (it would use 10000 and decode other tokens)."""
    folder = tmp_path_factory.mktemp("qwen2-rope")
    source = tiny_model_factory("qwen2")
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["rope_parameters"]["rope_theta"] = 1_000_000.0
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(folder)  # v5 saves extra special tokens as a list: v4 must read it
    tokenizer.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    tokenizer.save_pretrained(folder)
    return folder


@needs_exporter
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_onnx_greedy_matches_hf(
    family: str, tiny_model_factory: Callable[..., Path], qwen2_long_rope: Path, tmp_path: Path
) -> None:
    model_dir = qwen2_long_rope if family == "qwen2" else tiny_model_factory(family)
    ctx, lines = make_context(model_dir, tmp_path / "export")

    (artifact,) = write_onnx(ctx)

    assert (artifact.name, artifact.format, artifact.path, artifact.serve_engine) == ("onnx", "onnx", "onnx", None)
    assert artifact.checks == {"greedy_match": 1.0}
    folder = ctx.export_dir / "onnx"
    files = {path.name for path in folder.iterdir()}
    assert {"model.onnx", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    assert artifact.size_bytes == sum(path.stat().st_size for path in folder.iterdir())
    assert [path.name for path in ctx.export_dir.iterdir()] == ["onnx"]  # no temporary folder left
    assert any("onnxruntime" in line for line in lines) and lines[-1].startswith("ONNX: wrote onnx/")

    # independently of optimum: plain onnxruntime with the past key values fed back, token for token
    ran = onnx_venv(ORT_GREEDY, str(folder), json.dumps(ctx.verify_prompts), str(VERIFY_TOKENS))
    layers = json.loads((model_dir / "config.json").read_text())["num_hidden_layers"]
    past = {f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")}
    assert past <= set(ran["inputs"]) and {"input_ids", "attention_mask"} <= set(ran["inputs"])
    assert {f"present.{i}.key" for i in range(layers)} <= set(ran["outputs"])
    assert ran["produced"] == ctx.verify_reference
    assert all(len(tokens) == VERIFY_TOKENS for tokens in ran["produced"])

    # the folder's tokenizer (normalised for transformers 4) gives the same ids as the merged model's
    expected = [AutoTokenizer.from_pretrained(model_dir)(text)["input_ids"] for text in TOKENIZER_TEXTS]
    assert onnx_venv(TOKENIZE, str(folder), json.dumps(TOKENIZER_TEXTS)) == expected
    assert json.loads((folder / "config.json").read_text())["rope_theta"] == (1e6 if family == "qwen2" else 1e4)


@needs_exporter
def test_no_verify_and_replaces_earlier_export(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    ctx, _ = make_context(tiny_model_factory("llama"), tmp_path / "export", verify=False)
    (ctx.export_dir / "onnx").mkdir()
    (ctx.export_dir / "onnx" / "stale.txt").write_text("old")

    (artifact,) = write_onnx(ctx)

    assert artifact.checks == {}
    assert not (ctx.export_dir / "onnx" / "stale.txt").exists()
    assert (ctx.export_dir / "onnx" / "model.onnx").is_file()


@needs_exporter
def test_cancel_stops_the_exporter_and_leaves_nothing(tiny_model_factory: Callable[..., Path], tmp_path: Path) -> None:
    ctx, _ = make_context(tiny_model_factory("llama"), tmp_path / "export")
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(write_onnx(ctx)))
    worker.start()
    deadline = time.monotonic() + 60
    while not list(ctx.export_dir.glob(".tmp-onnx-*/source")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the exporter has started (its normalised copy of the merged model exists)
    assert list(ctx.export_dir.glob(".tmp-onnx-*/source")), "the exporter did not start"
    ctx.cancel.request()
    worker.join(timeout=30)

    assert not worker.is_alive() and result == [[]]
    assert list(ctx.export_dir.iterdir()) == []


def test_missing_exporter_is_a_clear_error(
    tiny_model_factory: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ONNX_PYTHON_ENV, str(tmp_path / "no-venv" / "bin" / "python"))
    spec = JobSpec.model_validate({"model": {"model_name_or_path": "m"}, "export": {"export_formats": ["onnx"]}})
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    ctx = ExportContext(spec, tiny_model_factory("llama"), export_dir, CancelRequest(), lambda line: None)

    for call in (lambda: preflight(spec), lambda: write_onnx(ctx)):
        with pytest.raises(TrainingError) as raised:
            call()
        assert "make install" in raised.value.message and "deploy/setup_onnx.sh" in raised.value.message
        assert str(tmp_path / "no-venv") in raised.value.message
    assert list(export_dir.iterdir()) == []


@needs_exporter
def test_exporter_failure_reports_its_words(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama", "dtype": "float32"}))
    spec = JobSpec.model_validate({"model": {"model_name_or_path": "m"}, "export": {"export_formats": ["onnx"]}})
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    ctx = ExportContext(spec, broken, export_dir, CancelRequest(), lambda line: None)

    with pytest.raises(TrainingError) as raised:
        write_onnx(ctx)

    assert raised.value.code == "internal" and "ONNX export failed" in raised.value.message
    assert "Error" in raised.value.message  # the exporter's own last lines
    assert list(export_dir.iterdir()) == []


def test_config_normalised_for_transformers_4() -> None:
    llama3 = {
        "model_type": "llama",
        "dtype": "bfloat16",
        "rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 500000.0, "low_freq_factor": 1.0},
    }
    assert normalise_config(llama3) == {
        **llama3,
        "torch_dtype": "bfloat16",
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0},
    }
    plain = {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}
    assert normalise_config(plain) == {**plain, "rope_theta": 1e6}
    # per-layer-type parameters (no single rope_type) are left alone
    per_layer = {"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6}}}
    assert normalise_config(per_layer) == per_layer
