"""End to end: a LoRA fine-tune trained on a real `tunery worker`, exported through the API and the queue
(`tunery export` on the tiny model), its artifacts registered with lineage and its merged model answering on
/v1; an export cancelled or whose worker is killed mid-way registers nothing; a hub token from the project's
secrets reaches the engine and nothing else."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.server.factories import Factory, ProjectHandle
from tests.server.jobs_support import Catalog
from tests.server.worker_support import (
    FINISHED,
    TRAINING_TIMEOUT,
    RedisServer,
    Stack,
    engine_processes,
    events,
    is_engine,
    job_in,
    job_row,
    wait_for,
)
from tunery.server.api.app import create_app
from tunery.server.db.models import Artifact, JobStatus, LogLine
from tunery.server.services import secrets
from tunery.server.services.jobs import cancel_job
from tunery.server.worker.context import WorkerContext
from tunery.server.worker.reaper import reap
from tunery.serving.config import ServingConfig
from tunery.serving.manager import EngineManager


def _engine_has_export() -> bool:
    from tunery.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    return "export" in (commands.choices or {})


def _gguf_tools() -> bool:
    try:
        import llama_cpp  # noqa: F401

        from tunery.engine.export.gguf import llama_cpp_dir

        llama_cpp_dir()
    except Exception:
        return False
    return True


pytestmark = pytest.mark.skipif(not _engine_has_export(), reason="the engine has no `tunery export` command yet")
ROWS = [{"instruction": f"Say hi {i}", "input": "", "output": f"Hi {i}!"} for i in range(8)]
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


@pytest.fixture
def stack(pg_url: str, tmp_path: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """The worker processes run offline for the hub (a push fails before any work)."""
    stack = Stack(tmp_path, pg_url, redis_server.url, TUNERY_REDIS_URL=redis_server.url, HF_HUB_OFFLINE="1")
    yield stack
    stack.close()


class World:
    def __init__(self, stack: Stack, tiny: Path) -> None:
        self.stack = stack
        self.project: ProjectHandle = Factory(stack.database, stack.settings).project()
        catalog = Catalog(stack.database, stack.settings)
        catalog.model(self.project.id, "tiny", path=str(tiny), template="llama3")
        self.dataset = catalog.dataset(self.project.id, "greetings", {"train.json": json.dumps(ROWS)})
        app = create_app(stack.settings)
        app.state.serving_manager = EngineManager(ServingConfig(engine="hf", idle_seconds=3600))
        self.client = TestClient(app)
        self.headers = self.project.owner.headers

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def export(self, **body: Any) -> str:
        return str(self.post(f"/api/projects/{self.project.id}/exports", {"dtype": "float32", **body})["id"])

    def finished(self, job_id: str, status: JobStatus = JobStatus.SUCCEEDED) -> None:
        job = wait_for(lambda: job_in(self.stack.database, job_id, *FINISHED), TRAINING_TIMEOUT, f"job {job_id}")
        assert job.status == status, job.error_message

    def artifacts(self, job_id: str) -> dict[str, dict[str, Any]]:
        listed = self.client.get(f"/api/jobs/{job_id}/artifacts", headers=self.headers).json()
        return {item["name"]: item for item in listed}


@pytest.fixture
def world(stack: Stack, tiny_llama: Path) -> Iterator[World]:
    world = World(stack, tiny_llama)
    with world.client:
        yield world


def registered(stack: Stack, job_id: str) -> list[str]:
    with stack.database.session() as session:
        return list(session.scalars(select(Artifact.name).where(Artifact.job_id == job_id)))


def test_a_fine_tune_is_exported_registered_and_served(world: World, stack: Stack) -> None:
    spec = {"model_name_or_path": "tiny", "dataset": "greetings", "template": "llama3", "stage": "sft",
            "finetuning_type": "lora", "max_steps": 2, "save_steps": 2, "logging_steps": 1,
            "per_device_train_batch_size": 2, "cutoff_len": 64, "use_cpu": True,
            "disable_gradient_checkpointing": True, "lr_scheduler_type": "constant", "seed": 7}  # fmt: skip
    trained = world.post("/api/jobs", {"spec": spec, "project_id": world.project.id, "gpus": 0})["id"]
    stack.worker("w1")
    world.finished(trained)
    source = f"ft:tiny:{world.project.slug}:{trained}:ckpt-2"
    formats: dict[str, Any] = {"formats": ["hf", "gguf"], "gguf_types": ["F16"]} if _gguf_tools() else {}
    exported = world.export(model=source, **formats)
    world.finished(exported)

    artifacts = world.artifacts(exported)
    merged = f"ft:tiny:{world.project.slug}:{exported}"
    model = artifacts["model"]
    assert (model["format"], model["kind"], model["serve_model_id"], model["sha256"]) == ("hf", "model", merged, None)
    assert model["details"]["lineage"] == {
        "source_job_id": trained,
        "checkpoint_step": 2,
        "adapters": [source],
        "base_model": "tiny",
    }
    assert model["checks"]["max_logit_diff"] < 1e-3
    [card] = [item for item in artifacts.values() if item["format"] == "card"]
    text = world.client.get(f"/api/jobs/{exported}/artifacts/{card['name']}", headers=world.headers).text
    assert world.dataset.content_hash in text  # the card names the data the model was trained on
    zipped = world.client.get(f"/api/jobs/{exported}/artifacts/model", headers=world.headers)
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    kinds = [row.type for row in events(stack.database, exported)]
    assert kinds.count("artifact") == len(artifacts)

    served = {m["id"] for m in world.client.get("/v1/models", headers=world.headers).json()["data"]}
    assert merged in served
    body = {"model": merged, "messages": [{"role": "user", "content": "Say hi 1"}], "max_tokens": 6, "temperature": 0}
    answer = world.client.post("/v1/chat/completions", json=body, headers=world.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["role"] == "assistant"
    assert answer.json()["usage"]["completion_tokens"] > 0
    if "gguf-F16" in artifacts:
        gguf = f"{merged}:gguf-f16"
        assert artifacts["gguf-F16"]["serve_model_id"] == gguf and gguf in served
        answer = world.client.post("/v1/chat/completions", json={**body, "model": gguf}, headers=world.headers)
        assert answer.status_code == 200, answer.text
    assert not engine_processes(stack.storage_root)


def signal_engines(stack: Stack, signum: int) -> list[psutil.Process]:
    engines = wait_for(lambda: engine_processes(stack.storage_root), 120, "the export engine")
    for process in engines:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
    return engines


def resume(engines: list[psutil.Process]) -> None:
    for process in engines:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)


def sigterm_pending(process: psutil.Process) -> bool:
    status = Path(f"/proc/{process.pid}/status").read_text()
    pending = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd", "ShdPnd"))]
    return any(mask & SIGTERM_BIT for mask in pending)


def started(stack: Stack, job_id: str) -> bool:
    return any(row.type == "started" for row in events(stack.database, job_id))


def test_a_cancelled_export_registers_nothing(world: World, stack: Stack) -> None:
    stack.worker("w1")
    job_id = world.export(model="tiny", formats=["hf"])
    wait_for(lambda: started(stack, job_id), TRAINING_TIMEOUT, "the export to start")
    engines = signal_engines(stack, signal.SIGSTOP)  # held mid-export until the worker has signalled it
    try:
        with stack.database.session() as session:
            cancel_job(session, job_id)
            session.commit()
        wait_for(lambda: all(sigterm_pending(p) for p in engines), 60, "the worker to stop the engine")
    finally:
        resume(engines)
    world.finished(job_id, JobStatus.CANCELLED)
    finished = [row.payload for row in events(stack.database, job_id) if row.type == "finished"]
    assert [payload["outcome"] for payload in finished] == ["cancelled"]
    assert registered(stack, job_id) == []
    output = stack.storage_root / "jobs" / job_id / "output"
    assert not [p for p in output.rglob("*") if p.name.endswith(".partial") or p.name.startswith(".")]
    assert not engine_processes(stack.storage_root)


def test_a_killed_worker_leaves_nothing_registered_and_the_retry_starts_over(world: World, stack: Stack) -> None:
    first = stack.worker("w1")
    job_id = world.export(model="tiny", formats=["hf"])
    wait_for(lambda: started(stack, job_id), TRAINING_TIMEOUT, "the export to start")
    engines = signal_engines(stack, signal.SIGSTOP)
    pool = [p for p in first.tree() if p.pid != first.pid and not is_engine(p)]
    try:
        first.process.kill()
        assert first.process.wait(30) == -signal.SIGKILL
        psutil.wait_procs(pool, timeout=30)
    finally:
        resume(engines)  # it gets SIGTERM (the launcher's parent-death signal), stops, exits
    wait_for(lambda: not engine_processes(stack.storage_root), 120, "the orphaned engine to exit")
    assert registered(stack, job_id) == [] and job_row(stack.database, job_id).status == JobStatus.RUNNING

    context = WorkerContext.from_settings(stack.settings)
    assert wait_for(lambda: reap(context).requeued, 60, "the reaper to re-queue the job") == [job_id]
    leftover = stack.storage_root / "jobs" / job_id / "output" / "leftover.partial"
    leftover.write_text("from the killed attempt")
    stack.worker("w2")
    world.finished(job_id)
    job = job_row(stack.database, job_id)
    assert (job.attempt, job.worker_id) == (2, "w2")
    assert not leftover.exists()
    assert sorted(registered(stack, job_id)) == sorted(world.artifacts(job_id))
    assert world.artifacts(job_id)["model"]["format"] == "hf"
    # the killed attempt may have reported a finished file before it was frozen (a tiny export is quick): its
    # events stay in the history, but registered nothing (checked above); what is registered is attempt 2's
    artifact_events = [row for row in events(stack.database, job_id) if row.type == "artifact"]
    second = sorted(row.payload["name"] for row in artifact_events if row.attempt == 2)
    assert second == sorted(registered(stack, job_id))


def test_the_hub_token_reaches_the_engine_and_nothing_else(world: World, stack: Stack) -> None:
    token = "hf_e2eSecretTokenValue42"
    with stack.database.session() as session:
        secrets.put_secret(session, stack.settings, world.project.id, "HF", token)
        session.commit()
    stack.worker("w1")
    job_id = world.export(model="tiny", hub_model_id="me/tiny", hub_token_secret="HF")
    world.finished(job_id, JobStatus.FAILED)
    job = job_row(stack.database, job_id)
    # the engine had the token (else: "holds no token"); the push fails offline, before any work
    assert "offline" in str(job.error_message) and "holds no token" not in str(job.error_message)
    assert registered(stack, job_id) == []
    folder = stack.storage_root / "jobs" / job_id
    stored = [json.dumps(job.spec), str(job.export), str(job.error_message)]
    stored += [json.dumps(row.payload) for row in events(stack.database, job_id)]
    with stack.database.session() as session:
        stored += list(session.scalars(select(LogLine.line).where(LogLine.job_id == job_id)))
    stored += [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()]
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/logs", f"/api/projects/{world.project.id}/exports",
                 f"/api/projects/{world.project.id}/secrets", f"/api/jobs/{job_id}/spec"):  # fmt: skip
        stored.append(world.client.get(path, headers=world.headers).text)
    assert all(token not in text for text in stored)
