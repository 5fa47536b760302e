"""GGUF export with llama.cpp's own tools: ``convert_hf_to_gguf.py`` (F32, F16, BF16, Q8_0) from the source
distribution of llama-cpp-python, and llama.cpp's quantizer (Q4_0, Q4_K_M) through llama-cpp-python's binding.
``deploy/setup_gguf.sh`` (``make install``) puts both into the virtual environment.

Every file is written as ``model-<TYPE>.gguf.partial``, loaded back in llama.cpp (``export_verify``: greedy tokens
against the merged model's as ``greedy_match``, the share of its tokens predicted along the reference as
``token_agreement``, and for 8- and 4-bit files perplexity on a fixed text against the merged model's), then renamed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from tunery.engine.export.gguf_convert import EXIT_UNKNOWN_PRE_TOKENIZER, EXIT_UNSUPPORTED, PROBLEM_PREFIX
from tunery.engine.export.types import (
    VERIFY_TOKENS,
    ExportContext,
    WrittenArtifact,
    greedy_match,
    stop_child,
)
from tunery.engine.train.errors import TrainingError
from tunery.spec.export_formats import GGUF_TYPES_BY_NAME
from tunery.spec.job import JobSpec

#: a llama.cpp tree holding convert_hf_to_gguf.py, conversion/ and gguf-py/ (default: the one setup_gguf.sh
#: extracts into the virtual environment)
LLAMA_CPP_DIR_ENV = "TUNERY_LLAMA_CPP_DIR"
CONVERTER = "convert_hf_to_gguf.py"
#: types the quantizer may start from, best first (it needs a float file)
QUANTIZE_SOURCES = ("F32", "F16", "BF16")
#: the fixed text the 8/4-bit files' perplexity is measured on (the same token ids for both models)
PERPLEXITY_TEXT = (
    "The river starts high in the mountains, where snow melts in the spring and runs down through narrow "
    "valleys. Farmers along its banks have used the water for hundreds of years to grow wheat, rice and "
    "vegetables. In the town at the bottom of the valley, a stone bridge crosses the river, and every "
    "morning people walk over it to the market. They buy bread, fish, fruit and tea, talk about the weather "
    "and the news, and then go back to work. When the rain is heavy, the river rises quickly, so the town "
    "keeps a record of the water level and warns everyone before it floods."
)
PERPLEXITY_MAX_TOKENS = 256
_POLL_SECONDS = 0.2


def gguf_file_name(kind: str) -> str:
    return f"model-{kind}.gguf"


def llama_cpp_dir() -> Path:
    """The llama.cpp tree with the converter; a clear error when it (or llama-cpp-python) is missing."""
    configured = os.environ.get(LLAMA_CPP_DIR_ENV)
    folder = Path(configured) if configured else Path(sys.prefix) / "share" / "tunery" / "llama.cpp"
    if not (folder / CONVERTER).is_file():
        where = f"{LLAMA_CPP_DIR_ENV}={configured}" if configured else str(folder)
        raise TrainingError(
            "internal",
            f"GGUF export needs llama.cpp's converter ({CONVERTER}), not found in {where}: run `make install` "
            f"(deploy/setup_gguf.sh), or set {LLAMA_CPP_DIR_ENV} to a llama.cpp source tree",
        )
    if importlib.util.find_spec("llama_cpp") is None:
        raise TrainingError(
            "internal", "GGUF export needs llama-cpp-python (llama.cpp's quantizer and loader): run `make install`"
        )
    return folder


def preflight(spec: JobSpec) -> None:
    """Called by the export runner before any work: the tools are there."""
    llama_cpp_dir()


def write_gguf(ctx: ExportContext) -> list[WrittenArtifact]:
    """Write ``model-<TYPE>.gguf`` for every type in ``export_gguf_types`` (float types first: the quantizer starts
    from one of them). Stops between files when a cancel arrives and returns the files completed until then."""
    tools = llama_cpp_dir()
    kinds = list(dict.fromkeys(ctx.spec.export.export_gguf_types))
    kinds.sort(key=lambda kind: not GGUF_TYPES_BY_NAME[kind].by_converter)  # stable: keeps the user's order
    quantized = [kind for kind in kinds if not GGUF_TYPES_BY_NAME[kind].by_converter]
    source_kind = next((kind for kind in QUANTIZE_SOURCES if kind in kinds), None)
    intermediate: Path | None = None
    if quantized and source_kind is None:
        source_kind = "BF16" if _merged_dtype(ctx.merged_dir) == "bfloat16" else "F16"
        intermediate = ctx.export_dir / f".gguf-source-{source_kind}.gguf.partial"
    verifier = _Verifier(ctx) if ctx.spec.export.export_verify else None
    written: list[WrittenArtifact] = []
    try:
        if intermediate is not None and source_kind is not None:
            ctx.log(f"GGUF: converting to {source_kind} for the quantizer (not kept)")
            if not _convert(ctx, tools, source_kind, intermediate):
                return written
        for kind in kinds:
            if ctx.cancel.requested:
                break
            source = intermediate or ctx.export_dir / gguf_file_name(source_kind or "F16")
            artifact = _write_one(ctx, tools, kind, source, verifier)
            if artifact is None:
                break
            written.append(artifact)
    finally:
        if intermediate is not None:
            intermediate.unlink(missing_ok=True)
    return written


def _write_one(
    ctx: ExportContext, tools: Path, kind: str, source: Path, verifier: _Verifier | None
) -> WrittenArtifact | None:
    started = time.monotonic()
    name = gguf_file_name(kind)
    final = ctx.export_dir / name
    partial = final.with_name(name + ".partial")
    try:
        if GGUF_TYPES_BY_NAME[kind].by_converter:
            done = _convert(ctx, tools, kind, partial)
        else:
            done = _run_tool(ctx, ["quantize", str(source), str(partial), kind], partial)
        if not done:
            return None
        checks = verifier.check(partial, kind) if verifier is not None else {}
        if ctx.cancel.requested:  # the checks may be incomplete: the file is not kept
            return None
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    size = final.stat().st_size
    figures = "".join(f", {key} {value:.4g}" for key, value in checks.items())
    ctx.log(f"GGUF {kind}: wrote {name} ({size / 1e6:.1f} MB, {time.monotonic() - started:.1f} s{figures})")
    return WrittenArtifact(
        name=f"gguf-{kind}",
        format="gguf",
        path=name,
        size_bytes=size,
        quantization=kind,
        serve_engine="gguf",
        checks=checks,
    )


def _convert(ctx: ExportContext, tools: Path, kind: str, outfile: Path) -> bool:
    model_name = Path(ctx.spec.model.model_name_or_path.rstrip("/")).name
    args = ["convert", str(tools), str(ctx.merged_dir), str(outfile), kind, model_name]
    return _run_tool(ctx, args, outfile)


def _run_tool(ctx: ExportContext, args: Sequence[str], outfile: Path) -> bool:
    """Run gguf_convert in a child process; False when a cancel stopped it (``outfile`` removed), an error
    with the tool's own words when it failed."""
    command = [sys.executable, "-m", "tunery.engine.export.gguf_convert", *args]
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        while process.poll() is None:
            if ctx.cancel.requested:
                stop_child(process)
                outfile.unlink(missing_ok=True)
                return False
            time.sleep(_POLL_SECONDS)
        if process.returncode == 0 and outfile.is_file():
            return True
        lines = _tail(output)
    outfile.unlink(missing_ok=True)
    problems = [line.removeprefix(PROBLEM_PREFIX) for line in lines if line.startswith(PROBLEM_PREFIX)]
    details = "\n".join(line for line in lines if not line.startswith(PROBLEM_PREFIX))
    if process.returncode in (EXIT_UNKNOWN_PRE_TOKENIZER, EXIT_UNSUPPORTED):
        problem = problems[0] if problems else f"llama.cpp's converter cannot convert this model:\n{details}"
        raise TrainingError("invalid_spec", f"export_formats: gguf: {problem}")
    step = "llama.cpp's quantizer" if args[0] == "quantize" else "llama.cpp's converter"
    raise TrainingError("internal", f"{step} failed (exit {process.returncode}) writing {outfile.name}:\n{details}")


def _tail(output: IO[bytes], lines: int = 25) -> list[str]:
    output.seek(0)
    text = output.read().decode("utf-8", errors="replace")
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _merged_dtype(merged_dir: Path) -> str | None:
    try:
        config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    dtype = config.get("dtype") or config.get("torch_dtype")
    return dtype if isinstance(dtype, str) else None


class _Verifier:
    """Loads each written file in llama.cpp and compares it with the merged model (``ctx.verify_reference``)."""

    def __init__(self, ctx: ExportContext) -> None:
        self.ctx = ctx
        self._perplexity_ids: list[int] | None = None
        self._reference_perplexity: float | None = None

    def check(self, path: Path, kind: str) -> dict[str, float]:
        quantized = GGUF_TYPES_BY_NAME[kind].bits_per_weight < 16
        ids = self.perplexity_ids() if quantized else []
        reference = self.ctx.verify_reference or [[] for _ in self.ctx.verify_prompts]
        pairs = zip(self.ctx.verify_prompts, reference, strict=True)
        longest = max([len(prompt) + (len(ref) or VERIFY_TOKENS) for prompt, ref in pairs] or [0])
        model = load_llama(path, n_ctx=max(longest, len(ids), 64) + 8)
        checks: dict[str, float] = {}
        try:
            if self.ctx.verify_prompts:
                produced = [
                    greedy_tokens(model, prompt, len(ref) or VERIFY_TOKENS)
                    for prompt, ref in zip(self.ctx.verify_prompts, reference, strict=True)
                    if not self.ctx.cancel.requested
                ]
                if self.ctx.verify_reference and len(produced) == len(self.ctx.verify_reference):
                    checks["greedy_match"] = greedy_match(self.ctx.verify_reference, produced)
                    checks["token_agreement"] = token_agreement(model, self.ctx.verify_prompts, reference)
            if quantized:
                checks["perplexity"] = llama_perplexity(model, ids)
                checks["perplexity_ratio"] = checks["perplexity"] / self.reference_perplexity()
        finally:
            model.close()
        return checks

    def perplexity_ids(self) -> list[int]:
        if self._perplexity_ids is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.ctx.merged_dir)
            ids = tokenizer(PERPLEXITY_TEXT)["input_ids"]
            self._perplexity_ids = [int(i) for i in ids][:PERPLEXITY_MAX_TOKENS]
        return self._perplexity_ids

    def reference_perplexity(self) -> float:
        """Perplexity of the merged model, as saved, on the same token ids (transformers)."""
        if self._reference_perplexity is None:
            self._reference_perplexity = hf_perplexity(self.ctx.merged_dir, self.perplexity_ids())
        return self._reference_perplexity


def load_llama(path: Path, n_ctx: int) -> Any:
    """The file in llama-cpp-python (``logits_all``: llama-cpp-python keeps ``scores`` only then); a file llama.cpp
    cannot load fails the export."""
    from llama_cpp import Llama

    try:
        return Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False, seed=0)
    except (ValueError, RuntimeError) as exc:
        raise TrainingError("internal", f"llama.cpp cannot load the GGUF file it wrote ({path.name}): {exc}") from exc


def greedy_tokens(model: Any, prompt: Sequence[int], count: int) -> list[int]:
    """``count`` greedy tokens after ``prompt`` (token ids in, token ids out; end-of-sequence does not stop)."""
    import numpy as np

    model.reset()
    model.eval(list(prompt))
    produced: list[int] = []
    for _ in range(count):
        token = int(np.argmax(model.scores[model.n_tokens - 1]))
        produced.append(token)
        model.eval([token])
    return produced


def token_agreement(model: Any, prompts: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> float:
    """Share of the reference tokens the file predicts (argmax) when fed the reference so far: unlike greedy_match,
    one flipped near-tie does not change every later token."""
    import numpy as np

    same = total = 0
    for prompt, reference in zip(prompts, references, strict=True):
        if not reference:
            continue
        model.reset()
        model.eval([*prompt, *reference[:-1]])
        rows = np.asarray(model.scores[len(prompt) - 1 : len(prompt) + len(reference) - 1])
        same += int((rows.argmax(axis=1) == np.asarray(reference)).sum())
        total += len(reference)
    return same / total if total else 1.0


def llama_perplexity(model: Any, ids: Sequence[int]) -> float:
    """exp(mean negative log-likelihood) of ``ids[1:]`` given the preceding tokens."""
    import numpy as np

    model.reset()
    model.eval(list(ids))
    logits = np.asarray(model.scores[: len(ids) - 1], dtype=np.float64)
    peak = logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits - peak).sum(axis=1)) + peak[:, 0]
    targets = np.asarray(ids[1:])
    nll = log_norm - logits[np.arange(len(targets)), targets]
    return float(math.exp(float(nll.mean())))


def hf_perplexity(model_dir: Path, ids: Sequence[int]) -> float:
    """In the saved dtype (float32 unless the export asked for less): no more memory than the merge took."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    with torch.no_grad():
        tensor = torch.tensor([list(ids)])
        loss = model(input_ids=tensor, labels=tensor).loss
    del model
    return float(math.exp(float(loss)))
