"""What an export can write, torch-free: the engine's writers, the API catalog, the size estimate and the
dashboard all read the names from here (the engine registers one writer per format and a test checks both
lists are equal)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    name: str
    title: str
    #: the inference engine (tunery.serving registry name) that serves the written files; None: not servable
    serve_engine: str | None
    #: needs a CUDA GPU on the worker (the job is refused without one)
    needs_gpu: bool
    summary: str


EXPORT_FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("hf", "Merged model (safetensors)", "hf", False, "base + adapters merged, sharded safetensors"),
    ExportFormat("gguf", "GGUF (llama.cpp, Ollama)", "gguf", False, "llama.cpp's converter and quantizer"),
    ExportFormat("onnx", "ONNX (onnxruntime)", None, False, "optimum's exporter, decoder with past key values"),
    ExportFormat("gptq", "GPTQ (4/8-bit)", "hf", True, "GPTQModel calibration on export_quantization_dataset"),
)
EXPORT_FORMATS_BY_NAME: dict[str, ExportFormat] = {fmt.name: fmt for fmt in EXPORT_FORMATS}


@dataclass(frozen=True)
class GgufType:
    name: str  # llama.cpp's spelling (model-<name>.gguf)
    #: average bits per weight of the file (llama.cpp's figures; the size estimate multiplies parameters by it)
    bits_per_weight: float
    #: written by the converter directly (else quantized from the F16/F32 file with llama.cpp's quantizer)
    by_converter: bool
    summary: str


GGUF_TYPES: tuple[GgufType, ...] = (
    GgufType("F32", 32.0, True, "full precision, reference quality"),
    GgufType("F16", 16.0, True, "half precision, no measurable loss"),
    GgufType("BF16", 16.0, True, "bfloat16, as the model was trained"),
    GgufType("Q8_0", 8.5, True, "8-bit, near lossless"),
    GgufType("Q4_0", 4.5, False, "4-bit legacy, smallest and fastest"),
    GgufType("Q4_K_M", 4.85, False, "4-bit k-quant, the usual choice for local chat"),
)
GGUF_TYPES_BY_NAME: dict[str, GgufType] = {kind.name: kind for kind in GGUF_TYPES}
DEFAULT_GGUF_TYPES: tuple[str, ...] = ("F16", "Q4_K_M")
