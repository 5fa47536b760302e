"""Rules of the export section (``tunery export``). Registered into ``tunery.spec.rules.RULES`` on import
(rules.py imports this module).

LLaMA-Factory 0.9.5's semantics, and what Tunery does with them:

- ``export_dir`` is required to export; a rule cannot know the command, so ``tunery export`` checks it
  (``tunery.engine.export.job``). The job does not train.
- ``export_quantization_bit`` quantizes with GPTQ to 2, 3, 4 or 8 bits (LF: "AutoGPTQ only accepts 2/3/4/8-bit
  quantization") and needs ``export_quantization_dataset`` (LF: "Quantization dataset is necessary for
  exporting"). Tunery writes the GPTQ model as the ``gptq`` format: the two go together. LF refuses to quantize
  with adapters ("merge adapters before quantizing"); Tunery merges first, then quantizes the merged model.
- Adapters cannot be merged into a quantized base (LF: "Cannot merge adapters to a quantized model").
- ``export_legacy_format`` saves the merged model's weights as ``.bin`` files (LF on transformers 5 silently
  writes safetensors; Tunery converts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunery.spec.errors import SpecProblem
from tunery.spec.export import ExportSection
from tunery.spec.export_formats import EXPORT_FORMATS
from tunery.spec.rules import rule

if TYPE_CHECKING:
    from tunery.spec.job import JobSpec

#: GPTQ bit widths (LF's list; GPTQModel packs these).
GPTQ_BITS: tuple[int, ...] = (2, 3, 4, 8)
#: Keys only the GPTQ export reads.
GPTQ_KEYS: tuple[str, ...] = (
    "export_quantization_dataset",
    "export_quantization_nsamples",
    "export_quantization_maxlen",
)


def _changed(export: ExportSection, key: str) -> bool:
    default = ExportSection.model_fields[key].get_default(call_default_factory=True)
    return bool(getattr(export, key) != default)


@rule
def _export_formats(spec: JobSpec) -> list[SpecProblem]:
    export = spec.export
    formats = export.export_formats
    problems = []
    if not formats:
        names = ", ".join(fmt.name for fmt in EXPORT_FORMATS)
        problems.append(SpecProblem("export_formats", f"needs at least one format ({names})"))
    if "gguf" in formats and not export.export_gguf_types:
        problems.append(SpecProblem("export_gguf_types", "needs at least one GGUF type with gguf in export_formats"))
    if "gguf" not in formats and _changed(export, "export_gguf_types"):
        problems.append(
            SpecProblem("export_gguf_types", "only applies with gguf in export_formats (add gguf or remove it)")
        )
    if export.export_legacy_format and "hf" not in formats:
        problems.append(
            SpecProblem("export_legacy_format", "only applies to the merged model's files: add hf to export_formats")
        )
    return problems


@rule
def _export_quantization(spec: JobSpec) -> list[SpecProblem]:
    export = spec.export
    bits = export.export_quantization_bit
    gptq = "gptq" in export.export_formats
    problems = []
    if bits is not None and bits not in GPTQ_BITS:
        problems.append(SpecProblem("export_quantization_bit", f"GPTQ quantizes to 2, 3, 4 or 8 bits (got {bits})"))
    if gptq and bits is None:
        problems.append(SpecProblem("export_quantization_bit", "is required with gptq in export_formats (4 or 8)"))
    if bits is not None and not gptq:
        problems.append(SpecProblem("export_quantization_bit", "quantizes with GPTQ: add gptq to export_formats"))
    if gptq and not export.export_quantization_dataset:
        problems.append(
            SpecProblem(
                "export_quantization_dataset",
                "is required for GPTQ: calibration texts (a JSON/JSONL/CSV/Parquet file with a text column, "
                "or a hub dataset id)",
            )
        )
    if not gptq:
        problems.extend(
            SpecProblem(key, "only applies to the GPTQ export (gptq in export_formats)")
            for key in GPTQ_KEYS
            if _changed(export, key)
        )
    return problems


@rule
def _export_merge(spec: JobSpec) -> list[SpecProblem]:
    model = spec.model
    if spec.export.export_dir and model.quantization_bit is not None and model.adapter_name_or_path:
        return [
            SpecProblem(
                "quantization_bit",
                "adapters cannot be merged into a quantized base: load the base unquantized (remove "
                "quantization_bit) to merge",
            )
        ]
    return []
