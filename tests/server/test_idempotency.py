"""Idempotency-Key: same key + same request -> the stored response; same key + other request -> 422."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.server.factories import Factory, ProjectHandle, UserHandle
from tests.server.uploads_support import ALPACA_ROWS, CONTENT_TYPE, multipart, rows
from tunery.server.db.models import Dataset, DatasetVersion, IdempotencyKey, Project
from tunery.server.db.session import Database
from tunery.server.idempotency import request_hash


def _count(database: Database, model: type) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_same_key_same_body_replays_the_first_response(
    client: TestClient, owner: UserHandle, database: Database
) -> None:
    headers = {**owner.headers, "Idempotency-Key": "create-1"}
    projects_before = _count(database, Project)
    first = client.post("/api/projects", json={"name": "Once", "slug": "once"}, headers=headers)
    # same content, other spacing and key order
    second = client.post(
        "/api/projects",
        content=b'{ "slug": "once",  "name": "Once" }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count(database, Project) == projects_before + 1


def test_same_key_different_body_is_refused(client: TestClient, owner: UserHandle, database: Database) -> None:
    headers = {**owner.headers, "Idempotency-Key": "create-2"}
    created = client.post("/api/projects", json={"name": "A"}, headers=headers)
    assert created.status_code == 201
    before = _count(database, Project)
    other = client.post("/api/projects", json={"name": "B"}, headers=headers)
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]
    # the same body to another endpoint is another request too
    elsewhere = client.post(f"/api/projects/{created.json()['id']}/experiments", json={"name": "A"}, headers=headers)
    assert elsewhere.status_code == 422
    assert _count(database, Project) == before


def test_keys_belong_to_their_user(client: TestClient, factory: Factory) -> None:
    alice, bob = factory.user(), factory.user()
    first = client.post("/api/projects", json={"name": "A"}, headers={**alice.headers, "Idempotency-Key": "k"})
    second = client.post("/api/projects", json={"name": "B"}, headers={**bob.headers, "Idempotency-Key": "k"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_a_failed_request_releases_its_key(client: TestClient, project: ProjectHandle, database: Database) -> None:
    owner = project.owner
    url = f"/api/projects/{project.id}/datasets"
    assert client.post(url, json={"name": "taken"}, headers=owner.headers).status_code == 201
    headers = {**owner.headers, "Idempotency-Key": "retry-me"}
    assert client.post(url, json={"name": "taken"}, headers=headers).status_code == 409
    fixed = client.post(url, json={"name": "free"}, headers=headers)
    assert fixed.status_code == 201
    assert _count(database, Dataset) == 2


def test_a_request_still_in_progress_gets_409(client: TestClient, owner: UserHandle, database: Database) -> None:
    body = b'{"name": "Slow"}'
    with database.session() as session:
        digest = request_hash("POST", "/api/projects", "", body)
        session.add(IdempotencyKey(user_id=owner.id, key="busy", request_hash=digest, status_code=0, response=""))
        session.commit()
    headers = {**owner.headers, "Idempotency-Key": "busy", "Content-Type": "application/json"}
    answer = client.post("/api/projects", content=body, headers=headers)
    assert answer.status_code == 409
    assert "in progress" in answer.json()["detail"]


def test_uploads_are_idempotent_by_their_content(
    client: TestClient, project: ProjectHandle, database: Database
) -> None:
    owner = project.owner
    dataset = client.post(f"/api/projects/{project.id}/datasets", json={"name": "d"}, headers=owner.headers).json()
    url = f"/api/datasets/{dataset['id']}/versions"
    headers = {**owner.headers, "Content-Type": CONTENT_TYPE, "Idempotency-Key": "upload-1"}
    first = client.post(url, content=multipart({"a.json": rows(ALPACA_ROWS)}), headers=headers)
    again = client.post(url, content=multipart({"a.json": rows(ALPACA_ROWS)}), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert _count(database, DatasetVersion) == 1
    other = client.post(url, content=multipart({"a.json": rows(ALPACA_ROWS[:1])}), headers=headers)
    assert other.status_code == 422
    assert _count(database, DatasetVersion) == 1


def test_bad_keys_are_refused(client: TestClient, owner: UserHandle) -> None:
    answer = client.post("/api/projects", json={"name": "A"}, headers={**owner.headers, "Idempotency-Key": "x" * 201})
    assert answer.status_code == 422
