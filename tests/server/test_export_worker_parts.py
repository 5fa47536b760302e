"""The worker's side of an export attempt without an engine: the output folder emptied, the card context file,
the hub token in the engine's environment only (redacted from whatever the engine prints), and artifacts
registered exactly from the ``artifact`` events of a succeeded attempt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.server.jobs_support import Catalog
from tests.server.worker_support import Stack, claim_as_w, new_job, new_project, relay_stack
from tunery.server.db.models import (
    Artifact,
    EvalResult,
    Job,
    JobDatasetVersion,
    JobEvent,
    JobKind,
    JobStatus,
    LogLine,
    Metric,
)
from tunery.server.services import secrets
from tunery.server.worker.artifacts import register_artifacts
from tunery.server.worker.context import WorkerContext, WorkerOptions
from tunery.server.worker.engine_process import engine_command
from tunery.server.worker.export_prep import PrepareError, prepare_engine
from tunery.server.worker.finish import Outcome, collect_artifacts
from tunery.server.worker.jobfile import write_job_file
from tunery.server.worker.relay import EventRelay, LogRelay
from tunery.spec import JobSpec
from tunery.spec.events import EVENT_ADAPTER, ArtifactEvent, FailedEvent, LogEvent

TOKEN = "hf_TopSecretValue0123456789"
LINEAGE = {"source_job_id": None, "checkpoint_step": 2, "adapters": ["ft:x"], "base_model": "tiny"}


@pytest.fixture
def stack(pg_url: str, tmp_path: Path) -> Iterator[Stack]:
    with relay_stack(tmp_path, pg_url) as stack:
        yield stack


def export_spec(**keys: Any) -> dict[str, Any]:
    flat = {"model_name_or_path": "/models/tiny", "do_train": False, "export_dir": "output", "template": "llama3"}
    return JobSpec.from_mapping({**flat, **keys}).model_dump(mode="json")


def context(stack: Stack) -> WorkerContext:
    return WorkerContext(stack.settings, stack.database, WorkerOptions.from_settings(stack.settings, {}))


def source_job(stack: Stack, project_id: str) -> str:
    """A trained job with a dataset version, metrics and an eval job's result on its model."""
    version = Catalog(stack.database, stack.settings).dataset(project_id, "greetings", {"rows.json": "[]"})
    spec = {"model": {"model_name_or_path": "/m"}, "method": {"stage": "sft", "finetuning_type": "lora"},
            "data": {"template": "llama3"}}  # fmt: skip
    source = new_job(stack.database, project_id, spec, status=JobStatus.SUCCEEDED, name="first run")
    other = new_job(stack.database, project_id, spec, kind=JobKind.EVAL, status=JobStatus.SUCCEEDED,
                    evaluation={"model": f"ft:tiny:p:{source}:ckpt-2", "kind": "predict"})  # fmt: skip
    with stack.database.session() as session:
        session.add(JobDatasetVersion(job_id=source, dataset_version_id=version.id, name="greetings"))
        session.add(Metric(job_id=source, step=1, attempt=1, values={"loss": 2.0, "lr": 1e-4}))
        session.add(Metric(job_id=source, step=2, attempt=1, values={"loss": 1.5, "eval_loss": 1.7}))
        session.add(EvalResult(job_id=other, name="greetings", kind="predict", metrics={"rouge-l": 40.0}))
        session.commit()
    return source


def test_prepare_gives_the_engine_the_card_context_and_the_token_only(stack: Stack) -> None:
    project = new_project(stack.database)
    source = source_job(stack, project)
    with stack.database.session() as session:
        secrets.put_secret(session, stack.settings, project, "HF", TOKEN)
        session.commit()
    record = {"model": f"ft:tiny:p:{source}:ckpt-2", "extra_adapters": [], "hub_token_secret": "HF",
              "lineage": {**LINEAGE, "source_job_id": source}}  # fmt: skip
    spec = export_spec(export_hub_model_id="me/x", export_hub_token_env="HF_TOKEN")
    job_id = new_job(stack.database, project, spec, kind=JobKind.EXPORT, export=record, name="exp")
    stale = stack.storage_root / "jobs" / job_id / "output" / "model-F16.gguf"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed attempt")

    claim = claim_as_w(stack, job_id)
    files = write_job_file(stack.storage_root, job_id, claim.spec, None)
    extras = prepare_engine(context(stack), claim, files)
    assert not stale.exists() and files.output_dir.is_dir()  # every attempt starts over
    assert extras.env == {"HF_TOKEN": TOKEN} and extras.hidden == (TOKEN,)
    assert extras.args == ("--card-context", str(files.folder / "card-context.json"))
    assert engine_command("export", files.job_file, extras.args)[-2:] == list(extras.args)
    assert extras.lineage["source_job_id"] == source
    written = files.job_file.read_text()
    assert TOKEN not in written and "export_hub_model_id: me/x" in written
    assert f"export_dir: {files.output_dir}" in written

    card = json.loads((files.folder / "card-context.json").read_text())
    assert TOKEN not in json.dumps(card)
    assert card["export_job"] == {"id": job_id, "name": "exp"}
    assert card["source_job"] == {"id": source, "name": "first run", "stage": "sft", "finetuning_type": "lora",
                                  "template": "llama3", "model": record["model"]}  # fmt: skip
    assert card["checkpoint_step"] == 2
    [dataset] = card["datasets"]
    assert (dataset["name"], dataset["dataset"], dataset["version"]) == ("greetings", "greetings", 1)
    assert len(dataset["content_hash"]) == 64
    assert card["final_metrics"] == {"loss": 1.5, "lr": 1e-4, "eval_loss": 1.7}
    assert [(r["name"], r["metrics"]) for r in card["eval_results"]] == [("greetings", {"rouge-l": 40.0})]
    assert card["base_model"]["path"] == "/models/tiny"

    with stack.database.session() as session:  # the secret is deleted before the next attempt
        secrets.delete_secret(session, project, "HF")
        session.commit()
    with pytest.raises(PrepareError, match="'HF'") as raised:
        prepare_engine(context(stack), claim, files)
    assert raised.value.code == "missing_secret"


def line(event: Any) -> str:
    return EVENT_ADAPTER.dump_json(event).decode()


def test_relays_redact_the_token_and_keep_the_artifact_events(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), export_spec(), kind=JobKind.EXPORT)
    claim = claim_as_w(stack, job_id)
    relay = EventRelay(stack.database.sessions, claim, stack.storage_root, lambda *_: None, hidden=(TOKEN,))
    logs = LogRelay(stack.database.sessions, claim, hidden=(TOKEN,))
    artifact = ArtifactEvent(seq=2, name="model", format="hf", path=".", size_bytes=10, serve_engine="hf")
    assert relay.feed(line(LogEvent(seq=1, message=f"pushing with {TOKEN}"))) is None
    relay.feed(line(artifact))
    assert relay.feed(f"stray {TOKEN}\n") == "stray [redacted]\n"
    relay.feed(line(FailedEvent(seq=3, code="hub_error", message=f"401 for token {TOKEN}")))
    logs.add(f"Authorization: Bearer {TOKEN}\n")
    logs.flush()
    assert [event.name for event in relay.artifacts] == ["model"]
    with stack.database.session() as session:
        payloads = [row.payload for row in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id))]
        lines = session.scalars(select(LogLine.line).where(LogLine.job_id == job_id)).all()
    assert TOKEN not in json.dumps(payloads) and "[redacted]" in json.dumps(payloads)
    assert lines == ["Authorization: Bearer [redacted]"]


def test_only_a_succeeded_attempt_registers_and_only_what_its_events_named(stack: Stack) -> None:
    job_id = new_job(stack.database, new_project(stack.database), export_spec(), kind=JobKind.EXPORT)
    output = stack.storage_root / "jobs" / job_id / "output"
    output.mkdir(parents=True)
    (output / "config.json").write_text("{}")
    (output / "model.safetensors").write_bytes(b"w" * 10)
    (output / "model-F16.gguf").write_bytes(b"GGUF" * 5)
    (output / "model-Q4_0.gguf.partial").write_bytes(b"half")  # never announced: never registered
    (output / "export_results.json").write_text("{}")
    events = [
        ArtifactEvent(seq=1, name="model", format="hf", path=".", size_bytes=12, serve_engine="hf"),
        ArtifactEvent(
            seq=2,
            name="gguf-F16",
            format="gguf",
            quantization="F16",
            path="model-F16.gguf",
            size_bytes=999,
            serve_engine="gguf",
            checks={"greedy_match": 1.0},
        ),
        ArtifactEvent(seq=3, name="escape", format="card", path="../../../etc/passwd", size_bytes=1),
        ArtifactEvent(seq=4, name="missing", format="onnx", path="onnx", size_bytes=1),
    ]
    for status in (JobStatus.CANCELLED, JobStatus.FAILED, None):
        assert collect_artifacts(stack.storage_root, Outcome(status, "x"), output, events, LINEAGE) == []
    found = collect_artifacts(stack.storage_root, Outcome(JobStatus.SUCCEEDED, "ok"), output, events, LINEAGE)
    with stack.database.sessions.begin() as session:
        register_artifacts(session, job_id, found)
    with stack.database.session() as session:
        rows = {row.name: row for row in session.scalars(select(Artifact).where(Artifact.job_id == job_id))}
    assert set(rows) == {"model", "gguf-F16"}
    model, gguf = rows["model"], rows["gguf-F16"]
    assert (model.path, model.size_bytes, model.sha256, model.format) == (f"jobs/{job_id}/output", 12, None, "hf")
    assert (gguf.path, gguf.size_bytes, gguf.quantization) == (f"jobs/{job_id}/output/model-F16.gguf", 20, "F16")
    assert gguf.sha256 is not None and len(gguf.sha256) == 64
    assert gguf.details == {"checks": {"greedy_match": 1.0}, "serve_engine": "gguf", "path": "model-F16.gguf",
                            "lineage": LINEAGE}  # fmt: skip


def test_a_training_job_still_registers_its_output_files(stack: Stack) -> None:
    output = stack.storage_root / "train-output"
    output.mkdir(parents=True)
    (output / "adapter_model.safetensors").write_bytes(b"a")
    found = collect_artifacts(stack.storage_root, Outcome(JobStatus.SUCCEEDED, "ok"), output)
    assert [(item.name, item.kind, item.format) for item in found] == [("adapter_model.safetensors", "adapter", None)]
    assert Job  # the models import registers every table
