"""GPTQ export with GPTQModel (the maintained successor of AutoGPTQ, which LLaMA-Factory also uses): the merged
model quantized to ``export_quantization_bit`` bits (group size 128) on calibration windows from
``export_quantization_dataset``, saved in ``gptq/`` and loaded back for the greedy check.

Calibration follows LF: ``export_quantization_nsamples`` windows of ``export_quantization_maxlen`` tokens, each
cut at a random offset from a random text longer than that (seeded with the job's ``seed``). GPTQModel needs a
CUDA GPU: :func:`preflight` fails the job before any work without one or without the package."""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
import shutil
from pathlib import Path
from typing import Any

from tunery.engine.export.types import ExportContext, WrittenArtifact, greedy_match
from tunery.engine.train.errors import invalid_spec
from tunery.spec import JobSpec

GROUP_SIZE = 128
FOLDER = "gptq"
#: random texts tried per sample before giving up on finding one longer than export_quantization_maxlen (LF)
MAX_TRIES = 100
#: files of the merged model the quantized folder also needs (tokenizer, chat template, generation config)
_SIDE_FILES = ("tokenizer*", "special_tokens_map.json", "chat_template.jinja", "generation_config.json")


def preflight(spec: JobSpec) -> None:
    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU")
    if importlib.util.find_spec("gptqmodel") is None:
        missing.append("the gptqmodel package")
    if missing:
        raise invalid_spec(
            "export_quantization_bit",
            f"{spec.export.export_quantization_bit}-bit GPTQ needs {' and '.join(missing)}, which this machine "
            "lacks; remove gptq from export_formats or run the export on a GPU worker with gptqmodel installed",
        )


def calibration_texts(spec: JobSpec) -> list[str]:
    """The ``text`` of every row of ``export_quantization_dataset``: a JSON (list of strings or of objects) or
    JSONL file read here; CSV, Parquet, text files and hub dataset ids through ``datasets``."""
    source = spec.export.export_quantization_dataset
    if not source:
        raise invalid_spec("export_quantization_dataset", "is required for GPTQ")
    path = Path(source)
    rows: list[Any]
    if path.suffix in (".json", ".jsonl") and path.is_file():
        text = path.read_text(encoding="utf-8")
        rows = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]
    else:
        rows = _dataset_rows(spec, source, path)
    texts = [row if isinstance(row, str) else row.get("text") if isinstance(row, dict) else None for row in rows]
    found = [text for text in texts if isinstance(text, str) and text.strip()]
    if not found:
        raise invalid_spec("export_quantization_dataset", f"{source} has no texts (strings or a 'text' field)")
    return found


def _dataset_rows(spec: JobSpec, source: str, path: Path) -> list[Any]:
    load_dataset = importlib.import_module("datasets").load_dataset

    kinds = {".csv": "csv", ".parquet": "parquet", ".txt": "text", ".arrow": "arrow"}
    try:
        if path.is_file():
            if path.suffix not in kinds:
                raise invalid_spec("export_quantization_dataset", f"{source}: use JSON, JSONL, CSV, Parquet or text")
            data = load_dataset(kinds[path.suffix], data_files=str(path), split="train", cache_dir=spec.model.cache_dir)
        else:
            data = load_dataset(source, split="train", cache_dir=spec.model.cache_dir, token=spec.model.hf_hub_token)
    except (OSError, ValueError) as exc:
        raise invalid_spec("export_quantization_dataset", f"cannot read {source}: {exc}") from exc
    return list(data)


def calibration_samples(spec: JobSpec, tokenizer: Any, texts: list[str]) -> list[dict[str, list[int]]]:
    """``export_quantization_nsamples`` token windows of ``export_quantization_maxlen`` tokens (LF's sampling)."""
    export = spec.export
    maxlen, rng = export.export_quantization_maxlen, random.Random(spec.training.seed)
    encoded: dict[int, list[int]] = {}
    samples = []
    for _ in range(export.export_quantization_nsamples):
        for _ in range(MAX_TRIES):
            index = rng.randrange(len(texts))
            if index not in encoded:
                encoded[index] = list(tokenizer(texts[index], add_special_tokens=True)["input_ids"])
            ids = encoded[index]
            if len(ids) > maxlen:
                break
        else:
            raise invalid_spec(
                "export_quantization_maxlen",
                f"no text of export_quantization_dataset found longer than {maxlen} tokens; lower it",
            )
        start = rng.randint(0, len(ids) - maxlen - 1)
        samples.append({"input_ids": ids[start : start + maxlen], "attention_mask": [1] * maxlen})
    return samples


def write_gptq(ctx: ExportContext) -> list[WrittenArtifact]:
    import torch
    from transformers import AutoTokenizer

    gptqmodel = importlib.import_module("gptqmodel")  # installed on GPU workers only

    export = ctx.spec.export
    bits = export.export_quantization_bit
    assert bits is not None, "the rules require export_quantization_bit with gptq"
    tokenizer = AutoTokenizer.from_pretrained(str(ctx.merged_dir))
    samples = calibration_samples(ctx.spec, tokenizer, calibration_texts(ctx.spec))
    ctx.log(f"GPTQ {bits}-bit: {len(samples)} calibration windows of {export.export_quantization_maxlen} tokens")
    ctx.cancel.raise_if_requested()
    config = gptqmodel.QuantizeConfig(bits=bits, group_size=GROUP_SIZE)
    model = gptqmodel.GPTQModel.load(str(ctx.merged_dir), config)
    model.quantize(samples, batch_size=1)
    ctx.cancel.raise_if_requested()
    partial = ctx.export_dir / f"{FOLDER}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save(str(partial))
    del model
    torch.cuda.empty_cache()
    for pattern in _SIDE_FILES:
        for path in ctx.merged_dir.glob(pattern):
            if not (partial / path.name).exists():
                shutil.copy2(path, partial / path.name)
    checks = _verify(ctx, partial) if ctx.verify_reference else {}
    final = ctx.export_dir / FOLDER
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    size = sum(path.stat().st_size for path in final.rglob("*") if path.is_file())
    return [
        WrittenArtifact(
            name=FOLDER,
            format="gptq",
            path=FOLDER,
            size_bytes=size,
            quantization=f"{bits}bit",
            serve_engine="hf",
            checks=checks,
        )
    ]


def _verify(ctx: ExportContext, folder: Path) -> dict[str, float]:
    """Load the quantized folder back with transformers and greedy-decode the verification prompts."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunery.engine.export.verify import greedy_tokens

    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), device_map="cuda")
    model.eval()
    produced = greedy_tokens(model, ctx.verify_prompts)
    del model
    torch.cuda.empty_cache()
    match = greedy_match(ctx.verify_reference, produced)
    ctx.log(f"GPTQ greedy tokens equal to the merged model's: {match:.0%}")
    return {"greedy_match": match}
