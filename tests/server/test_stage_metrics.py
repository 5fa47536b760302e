"""A stage's own metrics (ProgressEvent.metrics, any names) reach the metrics API and the live stream."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.server.factories import ProjectHandle
from tests.server.worker_support import new_job
from tunery.server.config import Settings
from tunery.server.db.base import utcnow
from tunery.server.db.session import Database
from tunery.server.worker.claim import Claim, try_claim
from tunery.server.worker.registry import WorkerIdentity, announce
from tunery.server.worker.relay import EventRelay
from tunery.spec.events import EVENT_ADAPTER, EvalEvent, ProgressEvent

STAGE_METRICS = {"rewards/accuracies": 0.75, "rewards/margins": 0.5, "logps/chosen": -12.0}


def test_progress_metrics_reach_the_metrics_api_and_the_stream(
    client: TestClient, database: Database, settings: Settings, project: ProjectHandle
) -> None:
    job_id = new_job(database, project.id, {"model": {"model_name_or_path": "tiny"}, "method": {"stage": "dpo"}})
    announce(database.sessions, WorkerIdentity("w", ("gpu",), (), 4))
    claim = try_claim(database.sessions, job_id, "w", timedelta(seconds=30), utcnow())
    assert isinstance(claim, Claim)
    published: list[dict[str, Any]] = []

    def publish(job: str, message: Mapping[str, Any]) -> None:
        published.append(dict(message))

    relay = EventRelay(database.sessions, claim, settings.storage_root, publish)
    progress = ProgressEvent(
        seq=1, step=1, total_steps=2, epoch=0.5, loss=0.69, elapsed_seconds=1.0, metrics=STAGE_METRICS
    )
    relay.feed(EVENT_ADAPTER.dump_json(progress).decode())
    relay.feed(
        EVENT_ADAPTER.dump_json(EvalEvent(seq=2, step=1, epoch=0.5, metrics={"eval_rewards/accuracies": 1.0})).decode()
    )

    headers = project.owner.headers
    answer = client.get(f"/api/jobs/{job_id}/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    [row] = answer.json()["items"]
    assert row["step"] == 1
    assert row["values"] == {"loss": 0.69, "epoch": 0.5, **STAGE_METRICS, "eval_rewards/accuracies": 1.0}

    live = [message for message in published if message["type"] == "progress"]
    assert live and live[0]["metrics"] == STAGE_METRICS
    with client.websocket_connect(f"/api/jobs/{job_id}/stream?after=0&token={project.owner.token}") as socket:
        replayed = [socket.receive_json() for _ in range(3)]  # the claim's status event, progress, eval
    by_type = {message["type"]: message for message in replayed}
    assert by_type["progress"]["metrics"] == STAGE_METRICS
    assert by_type["eval"]["metrics"] == {"eval_rewards/accuracies": 1.0}
