"""ONNX export of a merged model with optimum-onnx, run by ``tunery.engine.export.onnx`` with the python of
``.venv-onnx`` (deploy/setup_onnx.sh): optimum-onnx needs an older transformers than the engine, so this file
imports only the standard library, optimum, transformers, torch and onnxruntime, never tunery.

    python -I onnx_export_script.py REQUEST.json   (-I: this folder's types.py must not shadow the stdlib's)

REQUEST.json: {"merged_dir", "work_dir", "task", "verify_prompts": [[ids]], "verify_counts": [n]}. It writes
the export to ``work_dir/onnx`` and ``work_dir/result.json`` ({"produced": [[ids]], "files": [...]}); progress
lines start with ``PROGRESS_PREFIX``. The merged folder was saved by transformers 5, so a copy of its config and
tokenizer settings is normalised first (see ``normalise``); weights are linked, not copied.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

PROGRESS_PREFIX = "tunery-onnx: "
#: files of the merged folder the export never reads (other formats written next to it)
_SKIPPED_SUFFIXES = (".gguf", ".partial", ".onnx", ".onnx_data")


def progress(message: str) -> None:
    print(PROGRESS_PREFIX + message, flush=True)


def normalise_config(config: dict[str, Any]) -> dict[str, Any]:
    """transformers 5 keeps ``rope_theta`` and the scaling inside ``rope_parameters``; transformers 4 reads them
    from the top level (``rope_theta``, ``rope_scaling``) and would silently fall back to its default theta."""
    config = dict(config)
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_type" in rope:  # one set of parameters (not per layer type)
        if "rope_theta" in rope and config.get("rope_theta") is None:
            config["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default" and not config.get("rope_scaling"):
            config["rope_scaling"] = {key: value for key, value in rope.items() if key != "rope_theta"}
        if "partial_rotary_factor" in rope and "partial_rotary_factor" not in config:
            config["partial_rotary_factor"] = rope["partial_rotary_factor"]
    if "dtype" in config and "torch_dtype" not in config:
        config["torch_dtype"] = config["dtype"]
    return config


def normalise_tokenizer_config(settings: dict[str, Any], has_tokenizer_json: bool) -> dict[str, Any]:
    """transformers 5 names tokenizers transformers 4 lacks (``TokenizersBackend``) and saves extra special tokens
    as a list where 4 expects ``additional_special_tokens``; both fixed, the token ids are unchanged."""
    import transformers

    settings = dict(settings)
    extra = settings.get("extra_special_tokens")
    if isinstance(extra, list):
        settings.pop("extra_special_tokens")
        settings.setdefault("additional_special_tokens", extra)
    name = settings.get("tokenizer_class")
    known = isinstance(name, str) and any(hasattr(transformers, n) for n in (name, name + "Fast"))
    if has_tokenizer_json and not known:
        settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("backend", "is_local", "local_files_only"):  # transformers 5's loading flags, not settings
        settings.pop(key, None)
    return settings


def normalise(merged_dir: Path, source: Path) -> None:
    """A copy of ``merged_dir`` that transformers 4 loads the same: weights and other files linked, config and
    tokenizer settings rewritten."""
    source.mkdir(parents=True)
    for path in sorted(merged_dir.iterdir()):
        if not path.is_file() or path.name.endswith(_SKIPPED_SUFFIXES):
            continue
        target = source / path.name
        if path.name == "config.json":
            target.write_text(json.dumps(normalise_config(_read_json(path)), indent=2), encoding="utf-8")
        elif path.name == "tokenizer_config.json":
            settings = normalise_tokenizer_config(_read_json(path), (merged_dir / "tokenizer.json").is_file())
            target.write_text(json.dumps(settings, indent=2, ensure_ascii=False), encoding="utf-8")
        else:
            target.symlink_to(path.resolve())


def _read_json(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{path} is not a JSON object")
    return value


def export(source: Path, output: Path, task: str) -> None:
    from optimum.exporters.onnx import main_export  # type: ignore[import-not-found, unused-ignore]

    # float32 on the CPU (optimum exports fp16 on a GPU only); the greedy check below is the validation
    main_export(
        str(source), output=str(output), task=task, device="cpu", do_validation=False, library_name="transformers"
    )
    # transformers 4 saves the template inside tokenizer_config.json at best; keep the file serving engines read
    template = source / "chat_template.jinja"
    if template.is_file() and not (output / template.name).exists():
        shutil.copyfile(template, output / template.name)


def greedy(output: Path, prompts: list[list[int]], counts: list[int]) -> list[list[int]]:
    """Argmax continuation of each prompt in onnxruntime, through the exported past key values; end tokens do not
    stop it (the reference is decoded the same way)."""
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM  # type: ignore[import-not-found, unused-ignore]

    model = ORTModelForCausalLM.from_pretrained(str(output), use_cache=True, provider="CPUExecutionProvider")
    results = []
    for prompt, count in zip(prompts, counts, strict=True):
        ids = torch.tensor([prompt], dtype=torch.long)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        tokens: list[int] = []
        while True:
            token = int(out.logits[0, -1].argmax())
            tokens.append(token)
            if len(tokens) >= count:
                break
            total = len(prompt) + len(tokens)
            step = torch.tensor([[token]], dtype=torch.long)
            mask = torch.ones((1, total), dtype=torch.long)
            out = model(input_ids=step, attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
        results.append(tokens)
    return results


def main(argv: list[str]) -> int:
    request = _read_json(Path(argv[1]))
    work = Path(request["work_dir"])
    source, output = work / "source", work / "onnx"
    normalise(Path(request["merged_dir"]), source)
    started = time.monotonic()
    progress("exporting the merged model (float32, with past key values)")
    export(source, output, request["task"])
    progress(f"exported in {time.monotonic() - started:.1f} s")
    produced: list[list[int]] = []
    if request["verify_prompts"]:
        progress(f"checking greedy tokens in onnxruntime on {len(request['verify_prompts'])} prompts")
        produced = greedy(output, request["verify_prompts"], request["verify_counts"])
    shutil.rmtree(source)
    files = sorted(str(path.relative_to(output)) for path in output.rglob("*") if path.is_file())
    result = {"produced": produced, "files": files}
    (work / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
