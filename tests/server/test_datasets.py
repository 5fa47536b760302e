"""Datasets: multipart upload into immutable versions, dataset_info.json entries, validation reports, delete."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.server.factories import ProjectHandle, UserHandle
from tests.server.uploads_support import ALPACA_ROWS, BAD_ROWS, CONTENT_TYPE, multipart, rows, tree
from tests.support.tiny_models import SHARED_DATA
from tunery.server.config import Settings
from tunery.server.db.models import DatasetVersion, Job, JobDatasetVersion
from tunery.server.db.session import Database
from tunery.server.services.datasets import validate_dataset_version


@pytest.fixture
def dataset(client: TestClient, project: ProjectHandle, owner: UserHandle) -> dict[str, str]:
    answer = client.post(f"/api/projects/{project.id}/datasets", json={"name": "greetings"}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    body: dict[str, str] = answer.json()
    return body


def upload(client: TestClient, dataset_id: str, user: UserHandle, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
    url = f"/api/datasets/{dataset_id}/versions"
    return client.post(url, content=body, headers={**user.headers, "Content-Type": CONTENT_TYPE, **headers})


def test_upload_creates_a_valid_immutable_version(
    client: TestClient, dataset: dict[str, str], owner: UserHandle, settings: Settings
) -> None:
    answer = upload(client, dataset["id"], owner, multipart({"train.json": rows(ALPACA_ROWS)}))
    assert answer.status_code == 201, answer.text
    version = answer.json()
    assert version["version"] == 1
    assert version["status"] == "valid"
    assert (version["rows_total"], version["rows_valid"]) == (2, 2)
    assert version["info"] == {"file_name": "train.json"}
    assert len(version["content_hash"]) == 64
    folder = settings.storage_root / "datasets" / dataset["id"] / "v1"
    assert json.loads((folder / "train.json").read_bytes()) == ALPACA_ROWS
    assert json.loads((folder / "dataset_info.json").read_text()) == {"greetings": {"file_name": "train.json"}}
    assert not os.stat(folder / "train.json").st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)

    second = upload(client, dataset["id"], owner, multipart({"train.json": rows(ALPACA_ROWS)})).json()
    third = upload(client, dataset["id"], owner, multipart({"train.json": rows(ALPACA_ROWS[:1])})).json()
    assert [second["version"], third["version"]] == [2, 3]
    assert second["content_hash"] == version["content_hash"] != third["content_hash"]
    assert json.loads((folder / "train.json").read_bytes()) == ALPACA_ROWS  # v1 untouched
    listed = client.get(f"/api/datasets/{dataset['id']}/versions", headers=owner.headers).json()
    assert [item["version"] for item in listed] == [1, 2, 3]
    assert client.get(f"/api/datasets/{dataset['id']}", headers=owner.headers).json()["latest_version"] == 3
    # numbers are never reused: after deleting v3 the next upload is v4
    assert client.delete(f"/api/datasets/{dataset['id']}/versions/3", headers=owner.headers).status_code == 204
    fourth = upload(client, dataset["id"], owner, multipart({"train.json": rows(ALPACA_ROWS)})).json()
    assert fourth["version"] == 4


def test_report_lists_row_errors_with_file_row_field_message(
    client: TestClient, dataset: dict[str, str], owner: UserHandle, settings: Settings
) -> None:
    answer = upload(client, dataset["id"], owner, multipart({"data/bad.json": rows(BAD_ROWS)}))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "invalid"
    report = client.get(f"/api/datasets/{dataset['id']}/versions/1/report", headers=owner.headers).json()
    assert report["rows_total"] == 3
    assert report["rows_valid"] == 1
    assert report["error_count"] == 2
    assert {(e["file"], e["row"]) for e in report["errors"]} == {("data/bad.json", 2), ("data/bad.json", 3)}
    assert all(e["field"] and e["message"] for e in report["errors"])
    assert str(settings.storage_root) not in json.dumps(report)
    paged = client.get(f"/api/datasets/{dataset['id']}/versions/1/report?offset=1&limit=1", headers=owner.headers)
    assert paged.json()["errors"] == report["errors"][1:2]


def test_register_an_entry_of_an_uploaded_dataset_info_json(
    client: TestClient, dataset: dict[str, str], owner: UserHandle
) -> None:
    files = {
        "dataset_info.json": (SHARED_DATA / "dataset_info.json").read_bytes(),
        "identity.json": (SHARED_DATA / "identity.json").read_bytes(),
    }
    several = upload(client, dataset["id"], owner, multipart(files))
    assert several.status_code == 422
    assert "entry_name" in several.json()["detail"]
    answer = upload(client, dataset["id"], owner, multipart(files, {"entry_name": "identity"}))
    assert answer.status_code == 201, answer.text
    assert answer.json()["info"] == {"file_name": "identity.json"}
    assert answer.json()["status"] == "valid"
    assert answer.json()["rows_total"] == len(json.loads(files["identity.json"]))


def test_entry_field_with_columns_and_a_folder(client: TestClient, dataset: dict[str, str], owner: UserHandle) -> None:
    convo = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}]
    entry = {"file_name": "parts", "formatting": "sharegpt", "columns": {"messages": "conversations"}}
    body = multipart({"parts/a.json": rows(convo), "parts/b.json": rows(convo * 2)}, {"entry": json.dumps(entry)})
    answer = upload(client, dataset["id"], owner, body)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["status"], answer.json()["rows_total"]) == ("valid", 3)


def test_ranked_entries_are_checked_as_preference_pairs(
    client: TestClient, dataset: dict[str, str], owner: UserHandle
) -> None:
    pairs = json.loads((SHARED_DATA / "dpo_en_demo.json").read_text())[:3]
    entry = json.loads((SHARED_DATA / "dataset_info.json").read_text())["dpo_en_demo"]
    body = multipart({"dpo_en_demo.json": rows(pairs)}, {"entry": json.dumps(entry)})
    answer = upload(client, dataset["id"], owner, body)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["stage"], answer.json()["status"], answer.json()["rows_valid"]) == ("rm", "valid", 3)
    as_sft = upload(client, dataset["id"], owner, multipart({"dpo_en_demo.json": rows(pairs)}, {"stage": "sft"}))
    assert as_sft.json()["status"] == "invalid"  # alpaca columns are missing from preference rows


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"entry": json.dumps({"hf_hub_url": "org/data"})}, "hf_hub_url"),
        ({"entry": json.dumps({"file_name": "missing.json"})}, "not among the uploaded files"),
        ({"entry": json.dumps({"file_name": "../train.json"})}, "file_name refused"),
        ({"entry": "{not json"}, "not valid JSON"),
        ({"stage": "nonsense"}, "stage must be one of"),
    ],
)
def test_bad_entries_are_refused_and_leave_nothing(
    client: TestClient,
    dataset: dict[str, str],
    owner: UserHandle,
    settings: Settings,
    fields: dict[str, str],
    message: str,
) -> None:
    before = tree(settings.storage_root.parent)
    answer = upload(client, dataset["id"], owner, multipart({"train.json": rows(ALPACA_ROWS)}, fields))
    assert answer.status_code == 422
    assert message in answer.json()["detail"]
    assert tree(settings.storage_root.parent) == before


def test_validate_dataset_version_is_callable_by_workers(
    client: TestClient, dataset: dict[str, str], owner: UserHandle, database: Database, settings: Settings
) -> None:
    upload(client, dataset["id"], owner, multipart({"train.json": rows(ALPACA_ROWS)}))
    with database.session() as session:
        version = session.scalars(select(DatasetVersion)).one()
        version.status, version.report, version.rows_total = "pending", {}, None
        session.commit()
        checked = validate_dataset_version(session, settings.storage_root, version.id)
        assert (checked.status, checked.rows_total, checked.report["error_count"]) == ("valid", 2, 0)
    again = client.post(f"/api/datasets/{dataset['id']}/versions/1/validate", headers=owner.headers)
    assert again.json()["status"] == "valid"


def _use_in_job(database: Database, project_id: str) -> str:
    with database.session() as session:
        version = session.scalars(select(DatasetVersion)).one()
        job = Job(project_id=project_id, spec={})
        session.add(job)
        session.flush()
        session.add(JobDatasetVersion(job_id=job.id, dataset_version_id=version.id, name="greetings"))
        session.commit()
        return job.id


def test_delete_refused_while_a_job_uses_the_version(
    client: TestClient,
    dataset: dict[str, str],
    owner: UserHandle,
    project: ProjectHandle,
    database: Database,
    settings: Settings,
) -> None:
    upload(client, dataset["id"], owner, multipart({"train.json": rows(ALPACA_ROWS)}))
    job_id = _use_in_job(database, project.id)
    url = f"/api/datasets/{dataset['id']}"
    assert client.delete(f"{url}/versions/1", headers=owner.headers).status_code == 409
    assert client.delete(url, headers=owner.headers).status_code == 409
    assert (settings.storage_root / "datasets" / dataset["id"] / "v1" / "train.json").exists()
    with database.session() as session:
        session.delete(session.get(Job, job_id))
        session.commit()
    assert client.delete(f"{url}/versions/1", headers=owner.headers).status_code == 204
    assert not (settings.storage_root / "datasets" / dataset["id"] / "v1").exists()
    assert client.delete(url, headers=owner.headers).status_code == 204
    assert client.get(url, headers=owner.headers).status_code == 404


def test_duplicate_dataset_names_conflict(client: TestClient, dataset: dict[str, str], project: ProjectHandle) -> None:
    again = client.post(
        f"/api/projects/{project.id}/datasets", json={"name": "greetings"}, headers=project.owner.headers
    )
    assert again.status_code == 409
    bad_name = client.post(
        f"/api/projects/{project.id}/datasets", json={"name": "a,b@2"}, headers=project.owner.headers
    )
    assert bad_name.status_code == 422


def test_preview_renders_spans_and_statistics(
    client: TestClient,
    dataset: dict[str, str],
    owner: UserHandle,
    database: Database,
    project: ProjectHandle,
    tiny_llama: Path,
) -> None:
    from tunery.server.services.base_models import facts_for, register_model

    with database.session() as session:
        register_model(session, project.id, "tiny", str(tiny_llama), facts_for(str(tiny_llama), None))
        session.commit()
    long_row = {"instruction": "Tell a long story " * 40, "input": "", "output": "Once upon a time. " * 40}
    upload(client, dataset["id"], owner, multipart({"train.json": rows([*ALPACA_ROWS, long_row])}))
    url = f"/api/datasets/{dataset['id']}/versions/1/preview"
    answer = client.get(url, params={"model": "tiny", "n": 2, "cutoff_len": 128}, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["examples"]) == 2
    first = body["examples"][0]
    assert (first["file"], first["row"]) == ("train.json", 1)
    assert {span["trained"] for span in first["spans"]} == {True, False}
    assert "Hi!" in "".join(span["text"] for span in first["spans"] if span["trained"])
    assert "Say hi" in "".join(span["text"] for span in first["spans"] if not span["trained"])
    stats = body["stats"]
    assert (stats["examples"], stats["truncated"], stats["cutoff_len"]) == (3, 1, 128)
    assert sum(count for _, count in stats["histogram"]) == 3
    unknown = client.get(url, params={"model": "nope"}, headers=owner.headers)
    assert unknown.status_code == 422
