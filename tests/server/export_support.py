"""Rows and files of the export tests: a succeeded export job with its artifacts as a worker registers them
(the merged model at the top of the output folder, GGUF files, an ONNX folder, the card), written straight
to the database and the storage root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunery.server.config import Settings
from tunery.server.db.base import new_id, utcnow
from tunery.server.db.models import Artifact, Job, JobKind, JobStatus
from tunery.server.db.session import Database

#: the files of a merged model (weights, config, tokenizer) in an export folder
MODEL_FILES = {
    "config.json": "{}",
    "generation_config.json": "{}",
    "model.safetensors": "weights",
    "tokenizer.json": "{}",
    "tokenizer_config.json": "{}",
}
LINEAGE = {"source_job_id": "src", "checkpoint_step": None, "adapters": ["ft:tiny:p:src"], "base_model": "tiny"}


def export_job(
    database: Database,
    settings: Settings,
    project_id: str,
    base_model_id: str | None,
    gguf_types: tuple[str, ...] = ("F16",),
    status: JobStatus = JobStatus.SUCCEEDED,
    model: Path | None = None,
) -> str:
    """A finished export job: ``model`` (a model folder copied in; default: placeholder files) as artifact
    ``model`` at the top of the output folder, a ``model-<T>.gguf`` per type, ``onnx/`` and ``README.md``."""
    import shutil

    job_id = new_id()
    relative = f"jobs/{job_id}/output"
    output = settings.storage_root / relative
    if model is not None:
        shutil.copytree(model, output)
    else:
        output.mkdir(parents=True)
        for name, text in MODEL_FILES.items():
            (output / name).write_text(text, encoding="utf-8")
    (output / "onnx").mkdir()
    (output / "onnx" / "model.onnx").write_bytes(b"onnx")
    (output / "README.md").write_text("# card\n", encoding="utf-8")
    artifacts: list[dict[str, Any]] = [
        {"name": "model", "kind": "model", "path": relative, "format": "hf", "serve_engine": "hf"},
        {"name": "onnx", "kind": "model", "path": f"{relative}/onnx", "format": "onnx", "serve_engine": None},
        {"name": "card", "kind": "card", "path": f"{relative}/README.md", "format": "card", "serve_engine": None},
    ]
    for kind in gguf_types:
        (output / f"model-{kind}.gguf").write_bytes(b"GGUF" + kind.encode() * 16)
        artifacts.append(
            {"name": f"gguf-{kind}", "kind": "model", "path": f"{relative}/model-{kind}.gguf", "format": "gguf",
             "quantization": kind, "serve_engine": "gguf"}
        )  # fmt: skip
    with database.session() as session:
        session.add(
            Job(
                id=job_id,
                project_id=project_id,
                base_model_id=base_model_id,
                kind=JobKind.EXPORT,
                status=status,
                spec={"model": {"model_name_or_path": "/models/tiny"}, "data": {"template": "llama3"}},
                output_dir=relative,
                finished_at=utcnow(),
                export={"model": "ft:tiny:p:src", "extra_adapters": [], "lineage": LINEAGE},
            )
        )
        session.flush()
        for item in artifacts:
            checks = {"greedy_match": 1.0} if item["format"] in ("gguf", "onnx") else {}
            session.add(
                Artifact(
                    job_id=job_id,
                    name=item["name"],
                    kind=item["kind"],
                    path=item["path"],
                    size_bytes=1,
                    format=item["format"],
                    quantization=item.get("quantization"),
                    details={"checks": checks, "serve_engine": item["serve_engine"], "lineage": LINEAGE},
                )
            )
        session.commit()
    return job_id
