"""What the export steps share: the context a format writer gets and what it reports back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tunery.engine.train.cancel import CancelRequest
from tunery.spec.job import JobSpec


@dataclass
class ExportContext:
    """Everything a format writer needs; writers write under ``export_dir`` only, through a temporary name
    renamed into place when complete (a cancelled or killed export never leaves a half-written file there)."""

    spec: JobSpec
    #: the merged model as a transformers folder (weights in the export dtype, tokenizer, chat template,
    #: generation config); inside export_dir when hf is exported, else a scratch folder removed at the end
    merged_dir: Path
    export_dir: Path
    cancel: CancelRequest
    #: one line of progress for the user (a log event)
    log: Callable[[str], None]
    #: token ids of the verification prompts (chat-templated) and the merged model's greedy continuation of
    #: each (VERIFY_TOKENS tokens): writers compare their file's greedy tokens with these
    verify_prompts: list[list[int]] = field(default_factory=list)
    verify_reference: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True)
class WrittenArtifact:
    """One complete output; becomes an ``artifact`` event (tunery.spec.events.ArtifactEvent)."""

    name: str
    format: str  # hf | gguf | onnx | gptq | modelfile | card
    path: str  # relative to export_dir ('.' for the merged model at the top level)
    size_bytes: int
    quantization: str | None = None
    serve_engine: str | None = None
    checks: dict[str, float] = field(default_factory=dict)


#: a format writer (gguf, onnx, gptq): writes its files, returns what it wrote
Writer = Callable[[ExportContext], list[WrittenArtifact]]
#: greedy tokens compared per verification prompt
VERIFY_TOKENS = 32


def greedy_match(reference: list[list[int]], produced: list[list[int]]) -> float:
    """Share of positions where ``produced`` equals ``reference`` (each prompt compared up to the shorter)."""
    total = same = 0
    for ref, out in zip(reference, produced, strict=True):
        total += len(ref)
        same += sum(1 for a, b in zip(ref, out, strict=False) if a == b)
    return same / total if total else 1.0


def stop_child(process: subprocess.Popen[bytes], grace_seconds: float = 10.0) -> None:
    """End a converter/exporter child on cancel: SIGTERM, then SIGKILL if it has not exited within the grace."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
