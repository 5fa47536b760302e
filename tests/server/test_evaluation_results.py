"""Reading evaluations: results, the sample browser (sort, search, paging, never outside the storage root),
the diff of two runs and the catalog."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.server.eval_support import eval_job, sample_rows
from tests.server.factories import ProjectHandle
from tunery.server.config import Settings
from tunery.server.db.models import EvalResult
from tunery.server.db.session import Database
from tunery.spec.eval_metrics import METRICS
from tunery.spec.evaluation import PREDICT_METRICS


def get(client: TestClient, project: ProjectHandle, path: str, **params: Any) -> Any:
    return client.get(path, params=params, headers=project.owner.headers)


def test_results_and_the_evaluations_list(
    client: TestClient, project: ProjectHandle, database: Database, settings: Settings
) -> None:
    rows = sample_rows([{"rouge-l": 10.0}, {"rouge-l": 20.0}])
    job_id = eval_job(database, settings, project.id, {"alpaca": rows, "greetings": rows})
    results = get(client, project, f"/api/jobs/{job_id}/eval-results").json()
    assert [(r["name"], r["kind"], r["metrics"], r["samples"]) for r in results] == [
        ("alpaca", "predict", {"rouge-l": 50.0}, 2),
        ("greetings", "predict", {"rouge-l": 50.0}, 2),
    ]
    listed = get(client, project, f"/api/projects/{project.id}/evaluations").json()
    assert [[r["name"] for r in item["results"]] for item in listed["items"]] == [["alpaca", "greetings"]]
    assert listed["items"][0]["job"]["kind"] == "eval" and listed["next_cursor"] is None
    # a job with several results: the samples request names one
    response = get(client, project, f"/api/jobs/{job_id}/eval-samples")
    assert response.status_code == 422 and response.json()["param"] == "result"
    assert get(client, project, f"/api/jobs/{job_id}/eval-samples", result="nope").status_code == 404
    page = get(client, project, f"/api/jobs/{job_id}/eval-samples", result="greetings").json()
    assert page["total"] == 2


def test_samples_sort_search_and_page(
    client: TestClient, project: ProjectHandle, database: Database, settings: Settings
) -> None:
    scores = [{"rouge-l": 40.0, "length_mean": 3.0}, {"rouge-l": 10.0}, {"rouge-l": 90.0}, {}, {"rouge-l": 10.0}]
    job_id = eval_job(database, settings, project.id, {"greetings": sample_rows(scores)})
    url = f"/api/jobs/{job_id}/eval-samples"

    def indexes(**params: Any) -> tuple[list[int], int]:
        response = get(client, project, url, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        return [item["index"] for item in page["items"]], page["total"]

    assert indexes() == ([0, 1, 2, 3, 4], 5)
    assert indexes(sort="worst") == ([1, 4, 0, 2, 3], 5)  # ties by index, the unscored row last
    assert indexes(sort="best", metric="rouge-l") == ([2, 0, 1, 4, 3], 5)
    assert indexes(sort="worst", limit=2, offset=1) == ([4, 0], 5)
    assert indexes(q="QUESTION 2") == ([2], 1)
    assert indexes(q="answer", sort="best", limit=1) == ([2], 5)
    first = get(client, project, url, limit=1).json()["items"][0]
    assert first == {
        "index": 0,
        "prompt": "question 0",
        "label": "answer 0",
        "predict": "prediction 0",
        "predict_b": None,
        "winner": None,
        "subject": None,
        "scores": {"rouge-l": 40.0, "length_mean": 3.0},
    }
    for metric in ("length_mean", "no_such_metric"):
        response = get(client, project, url, sort="worst", metric=metric)
        assert response.status_code == 422 and response.json()["param"] == "metric"


def test_pairwise_and_benchmark_rows_keep_their_fields(
    client: TestClient, project: ProjectHandle, database: Database, settings: Settings
) -> None:
    rows = sample_rows([{"win_rate_a": 100.0}], predict_b="other answer", winner="a", subject="algebra")
    job_id = eval_job(database, settings, project.id, {"judge": rows}, kind="judge")
    item = get(client, project, f"/api/jobs/{job_id}/eval-samples", q="other").json()["items"][0]
    assert (item["predict_b"], item["winner"], item["subject"]) == ("other answer", "a", "algebra")


def test_samples_are_never_read_outside_the_storage_root(
    client: TestClient, project: ProjectHandle, database: Database, settings: Settings, tmp_path: Any
) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text('{"prompt": "secret"}\n', encoding="utf-8")
    job_id = eval_job(database, settings, project.id, {"greetings": sample_rows([{}])})
    url = f"/api/jobs/{job_id}/eval-samples"
    for stored in ("../secret.jsonl", str(outside)):
        with database.session() as session:
            session.execute(update(EvalResult).where(EvalResult.job_id == job_id).values(samples_file=stored))
            session.commit()
        response = get(client, project, url)
        assert response.status_code == 404 and "secret" not in response.text


def test_diff_of_two_runs(client: TestClient, project: ProjectHandle, database: Database, settings: Settings) -> None:
    a = eval_job(
        database,
        settings,
        project.id,
        {"greetings": sample_rows([{"rouge-l": 10.0}, {"rouge-l": 50.0}, {"rouge-l": 30.0}, {"rouge-l": 5.0}])},
    )
    b_rows = sample_rows([{"rouge-l": 20.0}, {"rouge-l": 40.0}, {"rouge-l": 30.0}, {}, {"rouge-l": 99.0}])
    for row in (b_rows[0], b_rows[1], b_rows[3]):  # answers that changed (index 3's score is missing: "same")
        row["predict"] = f"another {row['index']}"
    b = eval_job(database, settings, project.id, {"greetings": b_rows, "extra": b_rows})

    response = get(client, project, "/api/evaluations/diff", a=a, b=b)
    assert response.status_code == 200, response.text
    diff = response.json()
    assert (diff["better"], diff["worse"], diff["same"], diff["total"]) == (1, 1, 2, 4)  # index 4: only in b
    assert (diff["metric"], diff["result"]) == ("rouge-l", "greetings")
    assert [(i["index"], i["change"], i["score_a"], i["score_b"]) for i in diff["items"]] == [
        (0, "better", 10.0, 20.0),
        (1, "worse", 50.0, 40.0),
        (2, "same", 30.0, 30.0),
        (3, "same", 5.0, None),
    ]
    assert diff["items"][0]["predict_a"] == "prediction 0" and diff["items"][0]["label"] == "answer 0"
    changed = get(client, project, "/api/evaluations/diff", a=a, b=b, changed_only=True, limit=2, offset=1).json()
    assert [(i["index"], i["change"]) for i in changed["items"]] == [(1, "worse"), (3, "same")]  # answers differ
    assert changed["total"] == 3 and changed["better"] == 1
    reverse = get(client, project, "/api/evaluations/diff", a=b, b=a, result="greetings").json()
    assert (reverse["better"], reverse["worse"]) == (1, 1)
    missing = get(client, project, "/api/evaluations/diff", a=a, b=b, result="extra")
    assert missing.status_code == 422 and missing.json()["param"] == "result"
    bad_metric = get(client, project, "/api/evaluations/diff", a=a, b=b, metric="length_max")
    assert bad_metric.status_code == 422 and bad_metric.json()["param"] == "metric"


def test_catalog(client: TestClient, project: ProjectHandle) -> None:
    assert client.get("/api/evaluations/catalog").status_code == 401
    catalog = get(client, project, "/api/evaluations/catalog").json()
    assert [m["name"] for m in catalog["metrics"]] == [m.name for m in METRICS]
    rouge = next(m for m in catalog["metrics"] if m["name"] == "rouge-l")
    assert rouge["higher_is_better"] is True and rouge["unit"] == "0-100"
    assert catalog["predict_metrics"] == list(PREDICT_METRICS)
    assert catalog["kinds"] == ["predict", "benchmark", "judge"]
    assert catalog["judge_modes"] == ["single", "pairwise"]
    benchmarks = {b["task"]: b for b in catalog["benchmarks"]}
    assert {"mmlu_sample", "cmmlu_sample", "ceval_sample"} <= set(benchmarks)
    mmlu = benchmarks["mmlu_sample"]
    assert mmlu["bundled"] is True and mmlu["languages"] == ["en"] and "test" in mmlu["splits"] and mmlu["subjects"]
    assert "path" not in mmlu  # server paths stay on the server
