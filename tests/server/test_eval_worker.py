"""End to end: an eval job submitted through the API runs on a real `tunery worker` process (`tunery eval` on
the tiny model) and its results and samples come back through the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server.factories import Factory
from tests.server.jobs_support import Catalog
from tests.server.worker_support import FINISHED, TRAINING_TIMEOUT, Stack, job_in, wait_for
from tunery.server.api.app import create_app
from tunery.server.db.models import JobStatus


def _engine_has_eval() -> bool:
    from tunery.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    return "eval" in (commands.choices or {})


pytestmark = pytest.mark.skipif(not _engine_has_eval(), reason="the engine has no `tunery eval` command yet")

ROWS = [
    {"instruction": "Say hi", "input": "", "output": "Hi!"},
    {"instruction": "Count to two", "input": "", "output": "1, 2"},
]


def test_eval_jobs_run_on_a_worker(stack: Stack, tiny_llama: Path) -> None:
    factory = Factory(stack.database, stack.settings)
    project = factory.project()
    world = Catalog(stack.database, stack.settings)
    world.model(project.id, "tiny", path=str(tiny_llama), template="llama3")
    world.dataset(project.id, "greetings", {"train.json": json.dumps(ROWS)})
    headers = project.owner.headers
    url = f"/api/projects/{project.id}/evaluations"
    with TestClient(create_app(stack.settings)) as client:
        predict = client.post(
            url,
            json={
                "model": "tiny",
                "kind": "predict",
                "datasets": ["greetings"],
                "generation": {"do_sample": False, "max_new_tokens": 8},
                "gpus": 0,
            },
            headers=headers,
        )
        assert predict.status_code == 201, predict.text
        benchmark = client.post(
            url, json={"model": "tiny", "kind": "benchmark", "task": "mmlu_sample_test", "n_shot": 1}, headers=headers
        )
        assert benchmark.status_code == 201, benchmark.text
        stack.worker("w1")
        for job_id in (predict.json()["id"], benchmark.json()["id"]):
            job = wait_for(lambda j=job_id: job_in(stack.database, j, *FINISHED), TRAINING_TIMEOUT, "the eval job")
            assert job.status == JobStatus.SUCCEEDED, job.error_message

        predict_id = predict.json()["id"]
        results = client.get(f"/api/jobs/{predict_id}/eval-results", headers=headers).json()
        assert [(r["name"], r["kind"], r["samples"]) for r in results] == [("greetings", "predict", 2)]
        assert {"bleu-4", "rouge-1", "rouge-2", "rouge-l"} <= set(results[0]["metrics"])
        samples = client.get(f"/api/jobs/{predict_id}/eval-samples", headers=headers).json()
        assert samples["total"] == 2
        assert [item["label"] for item in samples["items"]] == ["Hi!", "1, 2"]
        assert all(item["prompt"] and "rouge-l" in item["scores"] for item in samples["items"])
        artifacts = client.get(f"/api/jobs/{predict_id}/artifacts", headers=headers).json()
        kinds = {artifact["name"]: artifact["kind"] for artifact in artifacts}
        assert kinds["generated_predictions.jsonl"] == "results" and kinds["predict_results.json"] == "results"

        benchmark_id = benchmark.json()["id"]
        results = client.get(f"/api/jobs/{benchmark_id}/eval-results", headers=headers).json()
        assert [(r["name"], r["kind"]) for r in results] == [("mmlu_sample_test", "benchmark")]
        assert "accuracy" in results[0]["metrics"] and results[0]["breakdown"]["subject"]
        listed = client.get(url, headers=headers).json()
        assert {item["job"]["id"]: item["kind"] for item in listed["items"]} == {
            predict_id: "predict",
            benchmark_id: "benchmark",
        }
