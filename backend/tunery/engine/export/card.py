"""The model card ``README.md`` written with every export: YAML front matter as the Hugging Face Hub reads it
(written by ``huggingface_hub.ModelCardData``) and a body with the lineage, data, settings, results, files and how
to run each of them.

``card_context`` (JSON the worker writes, ``tunery export --card-context``; every key optional): ``export_job``
{id, name} (the name titles the card unless a hub repository is set), ``model`` and ``adapters`` (served ids),
``base_model`` {name, path, id}, ``source_job`` (a mapping, shown as is), ``checkpoint_step``, ``datasets``
[{name, dataset, version, content_hash, rows}], ``final_metrics`` (or ``metrics``), ``eval_results`` [{name, kind,
metrics, job_id, model}] and ``spec`` (the source job's keys). Without it the card reads the adapter folders.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from tunery.engine.export.card_sources import AdapterInfo, License, base_license, flat_job, hub_id, read_adapter
from tunery.engine.export.types import ExportContext, WrittenArtifact

CARD = "README.md"
_CHECK_NAMES = {
    "greedy_match": "greedy match",
    "perplexity": "perplexity",
    "perplexity_ratio": "perplexity ratio",
    "max_logit_diff": "max logit diff",
}


def write_card(
    ctx: ExportContext, artifacts: list[WrittenArtifact], card_context: dict[str, Any] | None
) -> WrittenArtifact:
    """Write ``README.md`` into the export folder (through a temporary name)."""
    text = card_text(ctx, artifacts, card_context or {})
    target = ctx.export_dir / CARD
    partial = target.with_name(CARD + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    ctx.log("Model card written (README.md)")
    return WrittenArtifact(name=CARD, format="card", path=CARD, size_bytes=target.stat().st_size)


def card_text(ctx: ExportContext, artifacts: list[WrittenArtifact], context: dict[str, Any]) -> str:
    spec = ctx.spec
    base = spec.model.model_name_or_path
    base_info = _mapping(context.get("base_model"))
    repo = hub_id(str(base_info.get("name") or "")) or hub_id(base)
    adapters = [read_adapter(path) for path in spec.model.adapter_name_or_path or []]
    license_ = base_license(base, spec.model.gguf_file, repo)
    datasets = _datasets(context, spec.data.dataset)
    export_job = _mapping(context.get("export_job"))
    name = context.get("name") or export_job.get("name")
    title = _title(spec.export.export_hub_model_id, name, repo or base, adapters)
    metadata = _metadata(title, repo, adapters, artifacts, license_, datasets, context)
    metrics = context.get("final_metrics") or context.get("metrics")
    sections = [
        f"# {title}\n\n{_summary(repo or base, adapters, spec.model.gguf_file)}",
        _lineage(base, repo, adapters, context),
        _datasets_section(datasets),
        _settings_section(adapters, context.get("spec")),
        _metrics_section(adapters, metrics),
        _eval_section(context.get("eval_results")),
        _files_section(artifacts),
        _usage_section(artifacts, spec.export.export_hub_model_id),
        _license_section(license_),
    ]
    body = "\n\n".join(section for section in sections if section)
    return f"---\n{metadata.to_yaml()}\n---\n\n{body}\n"


def _title(repo: str | None, name: Any, base: str, adapters: list[AdapterInfo]) -> str:
    if repo:
        return repo
    if isinstance(name, str) and name.strip():
        return name.strip()
    short = (hub_id(base) or Path(base.rstrip("/")).name or base).split("/")[-1]
    return f"{short} fine-tuned" if adapters else f"{short} export"


# ----- front matter ---------------------------------------------------------------------------------------------


def _metadata(
    title: str,
    base_id: str | None,
    adapters: list[AdapterInfo],
    artifacts: list[WrittenArtifact],
    license_: License,
    datasets: list[dict[str, Any]],
    context: dict[str, Any],
) -> Any:
    from huggingface_hub import EvalResult, ModelCardData

    formats = {artifact.format for artifact in artifacts}
    library = next((name for fmt, name in _LIBRARIES if fmt in formats), None)
    tags = ["tunery", "text-generation", *sorted(formats & {"gguf", "onnx", "gptq"})]
    if adapters:
        tags += ["peft", "merged-adapter"]
    if "modelfile" in formats:
        tags.append("ollama")
    relation = "finetune" if adapters else ("quantized" if formats & {"gguf", "gptq"} else None)
    evals = [
        EvalResult(
            task_type="text-generation",
            dataset_type=str(entry.get("name")),
            dataset_name=str(entry.get("name")),
            metric_type=str(key),
            metric_value=value,
        )
        for entry in _eval_entries(context.get("eval_results"))
        for key, value in entry["metrics"].items()
        if _is_number(value)
    ]
    return ModelCardData(
        base_model=base_id,
        base_model_relation=relation if base_id else None,
        library_name=library,
        license=license_.license,
        license_name=license_.name if license_.license == "other" else None,
        license_link=license_.link if license_.license == "other" else None,
        tags=tags,
        datasets=[str(d["name"]) for d in datasets if hub_id(str(d.get("name", "")))] or None,
        pipeline_tag="text-generation",
        model_name=title if evals else None,
        eval_results=evals or None,
    )


#: the Hub's library_name for the first format present
_LIBRARIES = (("hf", "transformers"), ("gptq", "transformers"), ("gguf", "gguf"), ("onnx", "onnx"))


# ----- body -----------------------------------------------------------------------------------------------------


def _summary(base: str, adapters: list[AdapterInfo], gguf_file: str | None) -> str:
    source = f"`{base}`" + (f" (GGUF `{gguf_file}`)" if gguf_file else "")
    if not adapters:
        return f"An export of {source} made with Tunery."
    count = "one LoRA adapter" if len(adapters) == 1 else f"{len(adapters)} LoRA adapters, in order,"
    return f"{source} with {count} merged into its weights, exported with Tunery."


def _lineage(base: str, repo: str | None, adapters: list[AdapterInfo], context: dict[str, Any]) -> str:
    base = shown_path(base)
    where = f"`{repo}`" + (f" (`{base}`)" if repo != base else "") if repo else f"`{base}`"
    lines = ["## Lineage", "", f"- Base model: {where}"]
    for index, adapter in enumerate(adapters, 1):
        trained_on = f" (trained on `{adapter.base_model}`)" if adapter.base_model else ""
        lines.append(f"- Adapter {index} merged: `{shown_path(adapter.path)}`{trained_on}")
        if adapter.settings:
            lines.append("  - " + ", ".join(f"{k}: {_value(v)}" for k, v in adapter.settings.items()))
    if context.get("model"):
        lines.append(f"- Exported model (served id): `{context['model']}`")
    served = [str(a) for a in context.get("adapters") or [] if a]
    if served:
        lines.append("- Merged after it, in order: " + ", ".join(f"`{a}`" for a in served))
    source_job = context.get("source_job")
    if isinstance(source_job, dict) and source_job:
        shown = {k: v for k, v in source_job.items() if v not in (None, "", [], {})}
        lines.append("- Source job: " + ", ".join(f"{k}: {_value(v)}" for k, v in shown.items()))
    elif source_job:
        lines.append(f"- Source job: {source_job}")
    if context.get("checkpoint_step") is not None:
        lines.append(f"- Checkpoint: step {context['checkpoint_step']}")
    return "\n".join(lines)


def _datasets(context: dict[str, Any], names: list[str] | None) -> list[dict[str, Any]]:
    given = context.get("datasets")
    if isinstance(given, list) and given:
        return [entry for entry in given if isinstance(entry, dict) and entry.get("name")]
    return [{"name": name} for name in names or []]


def _datasets_section(datasets: list[dict[str, Any]]) -> str:
    if not datasets:
        return ""
    rows = [
        [
            f"`{d['name']}`" + (f" (`{d['dataset']}`)" if d.get("dataset") and d["dataset"] != d["name"] else ""),
            _cell(d.get("version")),
            _cell(d.get("content_hash"), code=True),
            _cell(d.get("rows")),
        ]
        for d in datasets
    ]
    return "## Training data\n\n" + _table(["Dataset", "Version", "Content hash", "Rows"], rows)


def _settings_section(adapters: list[AdapterInfo], given: Any) -> str:
    blocks: list[tuple[str, dict[str, Any]]] = []
    if isinstance(given, dict) and given:
        blocks.append(("the source job", flat_job(given)))
    else:
        seen: set[Path] = set()
        for adapter in adapters:
            if adapter.job and adapter.job_file is not None and adapter.job_file not in seen:
                seen.add(adapter.job_file)
                blocks.append((f"`{shown_path(adapter.job_file)}`", adapter.job))
    if not blocks:
        return ""
    parts = ["## Training configuration"]
    for where, keys in blocks:
        keys = {key: _shown_value(value) for key, value in keys.items()}
        dumped = yaml.safe_dump(keys, sort_keys=False, allow_unicode=True, default_flow_style=False)
        parts.append(f"From {where}:\n\n```yaml\n{dumped}```")
    return "\n\n".join(parts)


def _metrics_section(adapters: list[AdapterInfo], given: Any) -> str:
    metrics: dict[str, Any] = {}
    source = ""
    if adapters and adapters[-1].metrics:  # the last adapter is the latest training
        metrics.update(adapters[-1].metrics)
        source = f"From `{shown_path(adapters[-1].path)}` ({adapters[-1].metrics_file})"
    if isinstance(given, dict) and given:
        metrics.update(given)
        source = f"{source} and the source job" if source else "From the source job"
    if not metrics:
        return ""
    rows = [[f"`{key}`", _value(value)] for key, value in metrics.items()]
    return f"## Final training metrics\n\n{source}:\n\n" + _table(["Metric", "Value"], rows)


def _eval_entries(given: Any) -> list[dict[str, Any]]:
    if not isinstance(given, list):
        return []
    return [e for e in given if isinstance(e, dict) and e.get("name") and isinstance(e.get("metrics"), dict)]


def _eval_section(given: Any) -> str:
    entries = _eval_entries(given)
    if not entries:
        return ""
    parts = ["## Evaluation"]
    for entry in entries:
        kind = f" ({entry['kind']})" if entry.get("kind") else ""
        job = f"\n\nEvaluation job `{entry['job_id']}`" if entry.get("job_id") else ""
        job += f" of `{entry['model']}`" if job and entry.get("model") else ""
        rows = [[f"`{key}`", _value(value)] for key, value in entry["metrics"].items()]
        parts.append(f"### {entry['name']}{kind}{job}\n\n" + _table(["Metric", "Value"], rows))
    return "\n\n".join(parts)


def _files_section(artifacts: list[WrittenArtifact]) -> str:
    rows = [
        [_file_name(a), a.format, a.quantization or "", _size(a.size_bytes), _checks(a)]
        for a in artifacts
        if a.format != "card"
    ]
    if not rows:
        return ""
    return "## Files\n\n" + _table(["File", "Format", "Quantization", "Size", "Checks"], rows)


def _file_name(artifact: WrittenArtifact) -> str:
    if artifact.path in (".", ""):
        return "this folder (merged model)"
    return f"`{artifact.path}`"


def _usage_section(artifacts: list[WrittenArtifact], repo: str | None) -> str:
    where = repo or "."
    by_format: dict[str, list[WrittenArtifact]] = {}
    for artifact in artifacts:
        by_format.setdefault(artifact.format, []).append(artifact)
    parts = ["## How to run it"]
    if "hf" in by_format:
        parts.append(
            "With transformers:\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{where}")\n'
            f'model = AutoModelForCausalLM.from_pretrained("{where}", dtype="auto")\n'
            'messages = [{"role": "user", "content": "Hello!"}]\n'
            "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt', "
            "return_dict=True)\n"
            "output = model.generate(**inputs, max_new_tokens=128)\n"
            "print(tokenizer.decode(output[0][inputs['input_ids'].shape[1]:], skip_special_tokens=True))\n```"
        )
    if "gguf" in by_format:
        gguf = [a.path for a in by_format["gguf"]]
        first = next((p for p in gguf if "Q4_K_M" in p), gguf[0])
        parts.append(
            "With llama.cpp (the GGUF files carry the chat template):\n\n```sh\n"
            f"llama-cli -m {first} -cnv\nllama-server -m {first} --port 8080\n```"
        )
    if "modelfile" in by_format:
        parts.append(
            "With Ollama (the Modelfile holds the chat template, stop words and sampling settings):\n\n"
            "```sh\nollama create my-model -f Modelfile\nollama run my-model\n```"
        )
    if "onnx" in by_format:
        folder = by_format["onnx"][0].path
        load = f'"{where}", subfolder="{folder}"' if repo else f'"{folder}"'
        parts.append(
            "With onnxruntime (through optimum):\n\n```python\nfrom optimum.onnxruntime import ORTModelForCausalLM\n"
            "from transformers import AutoTokenizer\n\n"
            f"model = ORTModelForCausalLM.from_pretrained({load})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({load})\n```"
        )
    if "gptq" in by_format:
        folder = by_format["gptq"][0].path
        load = f'"{where}", subfolder="{folder}"' if repo else f'"{folder}"'
        parts.append(
            "GPTQ (a CUDA GPU and the gptqmodel package):\n\n```python\n"
            "from transformers import AutoModelForCausalLM\n\n"
            f'model = AutoModelForCausalLM.from_pretrained({load}, device_map="auto")\n```'
        )
    return "\n\n".join(parts) if len(parts) > 1 else ""


def _license_section(license_: License) -> str:
    if license_.source is None:
        return (
            "## License\n\n`other`: the base model's license could not be found (no license in its README or GGUF "
            "metadata). Check the base model's terms before you use or publish this model; they apply to it."
        )
    link = f" ({license_.link})" if license_.link else ""
    return (
        f"## License\n\n`{license_.license}`{link}, the base model's license (read from {license_.source}); "
        "the base model's terms apply to this model."
    )


# ----- formatting -----------------------------------------------------------------------------------------------


def shown_path(path: str | Path) -> str:
    """A local path as the card shows it: absolute paths keep their last two parts only (the card may be pushed
    to a hub; the export machine's folder layout is nobody's business), relative ones stay as written."""
    text = str(path)
    if not Path(text).is_absolute():
        return text
    return "/".join(Path(text).parts[-2:])


def _shown_value(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("/"):
        return shown_path(value)
    if isinstance(value, list):
        return [_shown_value(item) for item in value]
    return value


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _cell(value: Any, *, code: bool = False) -> str:
    if value is None or value == "":
        return ""
    text = _value(value).replace("|", "\\|")
    return f"`{text}`" if code else text


def _checks(artifact: WrittenArtifact) -> str:
    parts = []
    for key, value in artifact.checks.items():
        label = _CHECK_NAMES.get(key, key.replace("_", " "))
        parts.append(f"{label} {value:.1%}" if key == "greedy_match" else f"{label} {value:.4g}")
    return ", ".join(parts)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
