"""Projects, memberships and roles, experiments."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.server.factories import Factory, ProjectHandle, UserHandle
from tunery.server.config import Settings
from tunery.server.db.models import Role


def test_create_list_get_and_rename_a_project(client: TestClient, factory: Factory) -> None:
    user = factory.user()
    created = client.post("/api/projects", json={"name": "Chat Tuning!"}, headers=user.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["slug"] == "chat-tuning"
    assert body["role"] == "owner"
    again = client.post("/api/projects", json={"name": "Chat Tuning"}, headers=user.headers).json()
    assert again["slug"] == "chat-tuning-2"
    taken = client.post("/api/projects", json={"name": "x", "slug": "chat-tuning"}, headers=user.headers)
    assert taken.status_code == 409
    listed = client.get("/api/projects", headers=user.headers).json()
    assert [item["slug"] for item in listed] == ["chat-tuning", "chat-tuning-2"]
    by_slug = client.get("/api/projects/chat-tuning", headers=user.headers).json()
    assert by_slug["id"] == body["id"]
    renamed = client.patch(f"/api/projects/{body['id']}", json={"name": "Renamed"}, headers=user.headers)
    assert renamed.json()["name"] == "Renamed"


def test_roles_decide_who_may_change_what(client: TestClient, factory: Factory, project: ProjectHandle) -> None:
    member, viewer = factory.user(), factory.user()
    factory.member(project, member, Role.MEMBER)
    factory.member(project, viewer, Role.VIEWER)
    url = f"/api/projects/{project.id}"
    assert client.get(url, headers=viewer.headers).json()["role"] == "viewer"
    # viewers read only
    assert client.post(f"{url}/experiments", json={"name": "e1"}, headers=viewer.headers).status_code == 403
    assert client.get(f"{url}/experiments", headers=viewer.headers).status_code == 200
    # members write project content but do not manage the project
    assert client.post(f"{url}/experiments", json={"name": "e1"}, headers=member.headers).status_code == 201
    assert client.patch(url, json={"name": "mine"}, headers=member.headers).status_code == 403
    assert client.post(f"{url}/members", json={"email": "a@b.c"}, headers=member.headers).status_code == 403
    assert client.delete(url, headers=member.headers).status_code == 403


def test_members_are_added_changed_and_removed_by_owners(
    client: TestClient, factory: Factory, project: ProjectHandle
) -> None:
    owner, newcomer = project.owner, factory.user()
    url = f"/api/projects/{project.id}/members"
    added = client.post(url, json={"email": newcomer.email, "role": "viewer"}, headers=owner.headers)
    assert added.status_code == 201, added.text
    assert client.post(url, json={"email": newcomer.email}, headers=owner.headers).status_code == 409
    assert client.post(url, json={"email": "ghost@example.com"}, headers=owner.headers).status_code == 404
    assert client.get(f"/api/projects/{project.id}", headers=newcomer.headers).json()["role"] == "viewer"
    promoted = client.patch(f"{url}/{newcomer.id}", json={"role": "owner"}, headers=owner.headers)
    assert promoted.json()["role"] == "owner"
    emails = {item["email"]: item["role"] for item in client.get(url, headers=newcomer.headers).json()}
    assert emails == {owner.email: "owner", newcomer.email: "owner"}
    assert client.delete(f"{url}/{newcomer.id}", headers=owner.headers).status_code == 204
    assert client.get(f"/api/projects/{project.id}", headers=newcomer.headers).status_code == 404


def test_the_last_owner_stays(client: TestClient, factory: Factory, project: ProjectHandle) -> None:
    owner, member = project.owner, factory.user()
    factory.member(project, member, Role.MEMBER)
    url = f"/api/projects/{project.id}/members"
    assert client.patch(f"{url}/{owner.id}", json={"role": "member"}, headers=owner.headers).status_code == 409
    assert client.delete(f"{url}/{owner.id}", headers=owner.headers).status_code == 409
    # anyone may leave; a member may not remove others
    assert client.delete(f"{url}/{owner.id}", headers=member.headers).status_code == 403
    assert client.delete(f"{url}/{member.id}", headers=member.headers).status_code == 204


def test_deleting_a_project_removes_its_content(
    client: TestClient, project: ProjectHandle, owner: UserHandle, settings: Settings
) -> None:
    url = f"/api/projects/{project.id}"
    dataset = client.post(f"{url}/datasets", json={"name": "d"}, headers=owner.headers).json()
    files = {"files": ("d.json", b'[{"instruction": "a", "output": "b"}]', "application/json")}
    assert client.post(f"/api/datasets/{dataset['id']}/versions", files=files, headers=owner.headers).status_code == 201
    assert client.delete(url, headers=owner.headers).status_code == 204
    assert client.get(url, headers=owner.headers).status_code == 404
    assert client.get(f"/api/datasets/{dataset['id']}", headers=owner.headers).status_code == 404
    storage_root = settings.storage_root
    assert not (storage_root / "datasets" / dataset["id"]).exists()


def test_experiments_crud(client: TestClient, project: ProjectHandle, owner: UserHandle) -> None:
    url = f"/api/projects/{project.id}/experiments"
    created = client.post(url, json={"name": "lr-sweep", "description": "try lrs"}, headers=owner.headers)
    assert created.status_code == 201
    experiment = created.json()
    assert client.post(url, json={"name": "lr-sweep"}, headers=owner.headers).status_code == 409
    item = f"/api/experiments/{experiment['id']}"
    assert client.patch(item, json={"description": "done"}, headers=owner.headers).json()["description"] == "done"
    assert [e["name"] for e in client.get(url, headers=owner.headers).json()] == ["lr-sweep"]
    assert client.delete(item, headers=owner.headers).status_code == 204
    assert client.get(item, headers=owner.headers).status_code == 404
