"""Registering what a finished job left in its output folder: kind, size and sha256 of each file. An export
job's artifacts are exactly what its ``artifact`` events named (complete, verified outputs), nothing else."""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tunery.server.db.models import Artifact
from tunery.server.storage import UnsafePathError, check_relative
from tunery.server.worker.checkpoints import relative_to_root
from tunery.server.worker.sql import upsert
from tunery.spec.events import ArtifactEvent

log = logging.getLogger(__name__)

#: (glob, kind), first match wins; files matching nothing (and checkpoint folders) are not artifacts.
KINDS: tuple[tuple[str, str], ...] = (
    ("adapter_model.*", "adapter"),
    ("adapter_config.json", "adapter"),
    ("model*.safetensors", "model"),
    ("model.safetensors.index.json", "model"),
    ("pytorch_model*.bin", "model"),
    ("pytorch_model.bin.index.json", "model"),
    ("config.json", "model"),
    ("generation_config.json", "model"),
    ("tokenizer*", "tokenizer"),
    ("special_tokens_map.json", "tokenizer"),
    ("added_tokens.json", "tokenizer"),
    ("chat_template.*", "tokenizer"),
    ("vocab.json", "tokenizer"),
    ("merges.txt", "tokenizer"),
    ("*.png", "plot"),
    ("*results.json", "results"),
    ("trainer_state.json", "results"),
    ("trainer_log.jsonl", "results"),
    ("results.log", "results"),  # a benchmark's summary (LLaMA-Factory's name)
    ("*.jsonl", "results"),  # eval jobs: generated_predictions.jsonl and the per-sample rows of each result
)


@dataclass(frozen=True)
class FoundArtifact:
    name: str
    kind: str
    path: str  # relative to the storage root
    size_bytes: int
    sha256: str | None
    format: str | None = None
    quantization: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def kind_of(name: str) -> str | None:
    for pattern, kind in KINDS:
        if fnmatch.fnmatch(name, pattern):
            return kind
    return None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def scan_output(storage_root: Path, output_dir: Path) -> list[FoundArtifact]:
    """Top-level files of ``output_dir`` that are artifacts (hashing happens here, outside any transaction)."""
    if not output_dir.is_dir():
        return []
    found = []
    for path in sorted(output_dir.iterdir()):
        kind = kind_of(path.name)
        if kind is None or not path.is_file() or path.is_symlink():
            continue
        found.append(
            FoundArtifact(path.name, kind, relative_to_root(storage_root, path), path.stat().st_size, sha256_of(path))
        )
    return found


#: an export artifact's format -> the artifact kind lists show
EXPORT_KINDS = {"modelfile": "modelfile", "card": "card"}


def event_artifacts(
    storage_root: Path, output_dir: Path, events: Sequence[ArtifactEvent], lineage: dict[str, Any]
) -> list[FoundArtifact]:
    """The outputs an export's ``artifact`` events named (the last event of a name wins), each checked to be
    inside ``output_dir`` and present; files are hashed, folders keep the size the engine reported."""
    latest = {event.name: event for event in events}
    found = []
    for event in latest.values():
        path = _inside(output_dir, event.path)
        if path is None or not (path.is_file() or path.is_dir()) or path.is_symlink():
            log.warning("export artifact %r: %r is not in the output folder; not registered", event.name, event.path)
            continue
        size, digest = (path.stat().st_size, sha256_of(path)) if path.is_file() else (event.size_bytes, None)
        details = {"checks": dict(event.checks), "serve_engine": event.serve_engine, "path": event.path}
        found.append(
            FoundArtifact(
                event.name,
                EXPORT_KINDS.get(event.format, "model"),
                relative_to_root(storage_root, path),
                size,
                digest,
                event.format,
                event.quantization,
                {**details, "lineage": lineage},
            )
        )
    return found


def _inside(output_dir: Path, relative: str) -> Path | None:
    if relative in (".", "", "./"):
        return output_dir
    try:
        path = output_dir / check_relative(relative)
    except UnsafePathError:
        return None
    return path if path.resolve().is_relative_to(output_dir.resolve()) else None


def register_artifacts(session: Session, job_id: str, found: list[FoundArtifact]) -> None:
    for item in found:
        upsert(
            session,
            Artifact,
            {
                "job_id": job_id,
                "name": item.name,
                "kind": item.kind,
                "path": item.path,
                "size_bytes": item.size_bytes,
                "sha256": item.sha256,
                "format": item.format,
                "quantization": item.quantization,
                "details": item.details,
            },
            keys=("job_id", "name"),
            update=("kind", "path", "size_bytes", "sha256", "format", "quantization", "details"),
        )
