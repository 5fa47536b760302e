"""POST /api/projects/{id}/evaluations against real PostgreSQL: the eval job spec the server builds for base
models, fine-tunes and checkpoints, benchmarks and the judge; refusals naming the request's field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.server.eval_support import eval_job, fine_tune, predictions_file, sample_rows
from tests.server.factories import Factory, ProjectHandle
from tests.server.jobs_support import Catalog
from tunery.server.config import Settings
from tunery.server.db.models import Job, JobStatus, Role
from tunery.server.db.session import Database

ROWS = json.dumps(
    [
        {"instruction": "Say hi", "input": "", "output": "Hi!"},
        {"instruction": "Count to two", "input": "", "output": "1, 2"},
    ]
)
JUDGE = {"model": "judge-model", "base_url": "http://judge.example/v1", "api_key_env": "JUDGE_KEY"}


@pytest.fixture
def world(database: Database, settings: Settings) -> Catalog:
    return Catalog(database, settings)


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from tunery.server.worker import queue

    sent: list[str] = []
    monkeypatch.setattr(queue, "enqueue_job", lambda job_id, queue="gpu", settings=None: sent.append(job_id))
    return sent


@pytest.fixture
def tiny_id(world: Catalog, project: ProjectHandle) -> str:
    """The project's registered model ``tiny`` (template llama3) and dataset ``greetings``."""
    world.dataset(project.id, "greetings", {"train.json": ROWS})
    return world.model(project.id, "tiny", template="llama3")


def submit(client: TestClient, project: ProjectHandle, **body: Any) -> Any:
    return client.post(f"/api/projects/{project.id}/evaluations", json=body, headers=project.owner.headers)


def stored_spec(client: TestClient, project: ProjectHandle, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/jobs/{job_id}", headers=project.owner.headers)
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()["spec"]
    return spec


def fields(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def count_jobs(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def test_predict_on_a_base_model(
    client: TestClient, project: ProjectHandle, tiny_id: str, settings: Settings, enqueued: list[str]
) -> None:
    response = submit(
        client,
        project,
        name="baseline",
        model="tiny",
        kind="predict",
        datasets=["greetings"],
        max_samples=10,
        metrics=["bleu", "rouge"],
        generation={"temperature": 0.2, "max_new_tokens": 32, "do_sample": False},
        gpus=0,
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["kind"], job["status"], job["name"], job["gpu_count"]) == ("eval", "queued", "baseline", 0)
    assert job["base_model_id"] == tiny_id and enqueued == [job["id"]]
    assert job["best_checkpoint_step"] is None and job["stopped_early"] is False
    assert [d["name"] for d in job["dataset_versions"]] == ["greetings"]

    spec = stored_spec(client, project, job["id"])
    assert spec["model"]["model_name_or_path"] == "/models/tiny-llama"
    assert spec["model"]["adapter_name_or_path"] is None
    assert spec["data"]["template"] == "llama3"
    assert spec["data"]["eval_dataset"] == ["greetings"] and spec["data"]["dataset"] is None
    assert spec["data"]["max_samples"] == 10
    training = spec["training"]
    assert (training["do_train"], training["do_predict"], training["predict_with_generate"]) == (False, True, True)
    assert training["use_cpu"] is True and training["output_dir"].endswith(f"jobs/{job['id']}/output")
    assert spec["evaluation"]["eval_metrics"] == ["bleu", "rouge"] and spec["evaluation"]["task"] is None
    assert spec["generation"]["temperature"] == 0.2 and spec["generation"]["max_new_tokens"] == 32
    assert spec["generation"]["do_sample"] is False
    data_dir = Path(spec["data"]["dataset_dir"])
    assert data_dir == settings.storage_root / "jobs" / job["id"] / "data"
    info = json.loads((data_dir / "dataset_info.json").read_text())
    assert (data_dir / info["greetings"]["file_name"]).read_text() == ROWS

    listed = client.get(f"/api/projects/{project.id}/evaluations", headers=project.owner.headers).json()
    assert [(i["job"]["id"], i["model"], i["kind"], i["results"]) for i in listed["items"]] == [
        (job["id"], "tiny", "predict", [])
    ]


def test_a_checkpoint_and_a_fine_tune_load_their_adapter(
    client: TestClient,
    project: ProjectHandle,
    tiny_id: str,
    database: Database,
    settings: Settings,
    enqueued: list[str],
) -> None:
    trained = fine_tune(database, settings, project.id, tiny_id)
    output = settings.storage_root / "jobs" / trained / "output"
    for model, adapter in (
        (f"ft:tiny:{project.slug}:{trained}:ckpt-2", output / "checkpoint-2"),
        (f"ft:tiny:{project.slug}:{trained}", output),
    ):
        response = submit(client, project, model=model, kind="predict", datasets=["greetings"])
        assert response.status_code == 201, response.text
        job = response.json()
        assert job["base_model_id"] == tiny_id
        spec = stored_spec(client, project, job["id"])
        assert spec["model"]["model_name_or_path"] == "/models/tiny-llama"
        assert spec["model"]["adapter_name_or_path"] == [str(adapter)]
        assert spec["data"]["template"] == "llama3"
        listed = client.get(f"/api/projects/{project.id}/evaluations", headers=project.owner.headers).json()
        assert listed["items"][0]["model"] == model
    assert len(enqueued) == 2


def test_refusals_name_the_request_field_and_store_nothing(
    client: TestClient,
    project: ProjectHandle,
    tiny_id: str,
    database: Database,
    settings: Settings,
    enqueued: list[str],
) -> None:
    trained = fine_tune(database, settings, project.id, tiny_id)
    predict = {"model": "tiny", "kind": "predict", "datasets": ["greetings"]}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**predict, "model": "no-such-model"}, "model", "does not exist"),
        ({**predict, "model": f"ft:tiny:{project.slug}:{trained}:ckpt-3"}, "model", "does not exist"),
        ({**predict, "datasets": ["missing"]}, "datasets", "'missing' is not registered"),
        ({**predict, "datasets": None}, "datasets", "is required"),
        ({**predict, "task": "mmlu_sample_test"}, "task", "does not apply to kind predict"),
        ({**predict, "metrics": ["bleu", "perplexity"]}, "metrics", "unknown metric 'perplexity'"),
        ({**predict, "generation": {"num_beams": 4}}, "generation.num_beams", "beam search"),
        ({**predict, "generation": {"temperature": -1}}, "generation.temperature", "greater than or equal to 0"),
        ({**predict, "infer_backend": "sglang"}, "infer_backend", "not supported for predictions"),
        ({**predict, "max_samples": 0}, "max_samples", "greater than 0"),
        ({"model": "tiny", "kind": "benchmark", "task": "nope_test"}, "task", "no benchmark 'nope'"),
        ({"model": "tiny", "kind": "benchmark", "task": "mmlu_sample_dev"}, "task", "has no split 'dev'"),
        ({"model": "tiny", "kind": "benchmark", "task": "mmlu_sample_test", "lang": "zh"}, "lang", "prompts in en"),
        ({"model": "tiny", "kind": "benchmark"}, "task", "is required"),
        ({"model": "tiny", "kind": "benchmark", "task": "mmlu_sample_test", "judge": JUDGE}, "judge", "does not apply"),
        ({"kind": "judge", "judge": JUDGE, "judge_jobs": ["nope"]}, "judge_jobs", "job 'nope' not found"),
        ({"kind": "judge", "judge_jobs": [trained], "judge": JUDGE}, "judge_jobs", "is a train job"),
        ({**predict, "judge": {**JUDGE, "mode": "pairwise"}}, "judge_jobs", "compares two eval jobs"),
        ({**predict, "judge": {**JUDGE, "api_key_env": "TUNERY_SECRET_KEY"}}, "judge.api_key_env", "not passed"),
        ({"model": "tiny", "kind": "judge", "datasets": ["greetings"]}, "judge", "is required"),
    ]
    for body, field, message in cases:
        problems = fields(submit(client, project, **body))
        assert field in problems, (body, problems)
        assert message in problems[field], (body, problems)
    assert count_jobs(database) == 1 and enqueued == []  # only the fine-tune row
    assert sorted(path.name for path in (settings.storage_root / "jobs").iterdir()) == [trained]


def test_access_members_create_viewers_read_others_see_nothing(
    client: TestClient, factory: Factory, project: ProjectHandle, tiny_id: str, enqueued: list[str]
) -> None:
    viewer, stranger = factory.user(), factory.user()
    factory.member(project, viewer, Role.VIEWER)
    body = {"model": "tiny", "kind": "predict", "datasets": ["greetings"]}
    url = f"/api/projects/{project.id}/evaluations"
    assert client.post(url, json=body, headers=viewer.headers).status_code == 403
    assert client.post(url, json=body, headers=stranger.headers).status_code == 404
    created = client.post(url, json=body, headers=project.owner.headers)
    assert created.status_code == 201
    job_id = created.json()["id"]
    assert client.get(url, headers=viewer.headers).json()["items"][0]["job"]["id"] == job_id
    assert client.get(url, headers=stranger.headers).status_code == 404
    for path in (f"/api/jobs/{job_id}/eval-results", f"/api/jobs/{job_id}/eval-samples"):
        assert client.get(path, headers=stranger.headers).status_code == 404
    assert client.get(f"/api/evaluations/diff?a={job_id}&b={job_id}", headers=stranger.headers).status_code == 404


def test_benchmark_job_spec(
    client: TestClient, project: ProjectHandle, tiny_id: str, settings: Settings, enqueued: list[str]
) -> None:
    response = submit(client, project, model="tiny", kind="benchmark", task="mmlu_sample_test", n_shot=2, lang="en")
    assert response.status_code == 201, response.text
    spec = stored_spec(client, project, response.json()["id"])
    evaluation = spec["evaluation"]
    assert (evaluation["task"], evaluation["n_shot"], evaluation["lang"]) == ("mmlu_sample_test", 2, "en")
    assert spec["training"]["do_predict"] is False and spec["data"]["eval_dataset"] is None
    listed = client.get(f"/api/projects/{project.id}/evaluations", headers=project.owner.headers).json()
    assert listed["items"][0]["kind"] == "benchmark"


def test_judging_earlier_runs_reads_their_predictions(
    client: TestClient,
    project: ProjectHandle,
    tiny_id: str,
    database: Database,
    settings: Settings,
    enqueued: list[str],
) -> None:
    run_a = eval_job(database, settings, project.id, {"greetings": sample_rows([{"rouge-l": 1.0}])})
    run_b = eval_job(database, settings, project.id, {"greetings": sample_rows([{"rouge-l": 2.0}])}, model="other")
    single = submit(client, project, kind="judge", judge={**JUDGE, "rubric": "Score {prediction}"}, judge_jobs=[run_a])
    assert single.status_code == 201, single.text
    assert single.json()["gpu_count"] == 0
    spec = stored_spec(client, project, single.json()["id"])
    evaluation = spec["evaluation"]
    assert evaluation["judge_predictions"] == [str(predictions_file(settings, run_a))]
    assert (evaluation["judge_model"], evaluation["judge_base_url"]) == ("judge-model", "http://judge.example/v1")
    assert (evaluation["judge_api_key_env"], evaluation["judge_rubric"]) == ("JUDGE_KEY", "Score {prediction}")
    assert spec["training"]["do_predict"] is False and spec["training"]["use_cpu"] is True
    assert spec["model"]["model_name_or_path"] == "/models/tiny-llama"  # the judged run's (never loaded)

    pairwise = submit(client, project, kind="judge", judge={**JUDGE, "mode": "pairwise"}, judge_jobs=[run_a, run_b])
    assert pairwise.status_code == 201, pairwise.text
    evaluation = stored_spec(client, project, pairwise.json()["id"])["evaluation"]
    assert evaluation["judge_mode"] == "pairwise"
    assert evaluation["judge_predictions"] == [str(predictions_file(settings, j)) for j in (run_a, run_b)]
    listed = client.get(f"/api/projects/{project.id}/evaluations", headers=project.owner.headers).json()
    assert [(i["kind"], i["model"]) for i in listed["items"][:2]] == [("judge", "tiny"), ("judge", "tiny")]
    assert listed["items"][0]["request"]["judge_jobs"] == [run_a, run_b]
    assert listed["items"][0]["request"]["judge"]["mode"] == "pairwise"

    running = eval_job(database, settings, project.id, {"x": []}, status=JobStatus.RUNNING)
    problems = fields(submit(client, project, kind="judge", judge=JUDGE, judge_jobs=[running]))
    assert "that is running" in problems["judge_jobs"]


def test_predict_then_judge_in_one_job(
    client: TestClient, project: ProjectHandle, tiny_id: str, enqueued: list[str]
) -> None:
    response = submit(client, project, model="tiny", kind="judge", datasets=["greetings"], judge=JUDGE)
    assert response.status_code == 201, response.text
    spec = stored_spec(client, project, response.json()["id"])
    assert spec["training"]["do_predict"] is True and spec["evaluation"]["judge_model"] == "judge-model"
    assert spec["evaluation"]["judge_predictions"] is None


def test_training_specs_with_predictions_still_submit(
    client: TestClient, project: ProjectHandle, tiny_id: str, enqueued: list[str]
) -> None:
    """POST /api/jobs: a training spec that also predicts stays a training job; one that only predicts
    (LLaMA-Factory's do_train: false) is an eval job."""
    flat = {
        "model_name_or_path": "tiny",
        "dataset": "greetings",
        "eval_dataset": "greetings",
        "stage": "sft",
        "finetuning_type": "lora",
        "max_steps": 2,
        "output_dir": "anything",
        "do_predict": True,
        "predict_with_generate": True,
    }
    headers = project.owner.headers
    trains = client.post("/api/jobs", json={"spec": flat, "project_id": project.id}, headers=headers)
    assert trains.status_code == 201, trains.text
    assert trains.json()["kind"] == "train"
    only_predicts = {key: value for key, value in flat.items() if key != "dataset"} | {"do_train": False}
    predicts = client.post("/api/jobs", json={"spec": only_predicts, "project_id": project.id}, headers=headers)
    assert predicts.status_code == 201, predicts.text
    assert predicts.json()["kind"] == "eval" and predicts.json()["spec"]["data"]["eval_dataset"] == ["greetings"]
    listed = client.get(f"/api/projects/{project.id}/evaluations", headers=headers).json()
    assert [(i["job"]["id"], i["model"], i["kind"]) for i in listed["items"]] == [
        (predicts.json()["id"], "tiny", "predict")
    ]
    kinds = client.get(f"/api/jobs?project_id={project.id}&kind=train", headers=headers).json()["items"]
    assert [job["id"] for job in kinds] == [trains.json()["id"]]
    assert len(enqueued) == 2
