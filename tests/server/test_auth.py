"""Login tokens and API keys against real PostgreSQL: issue, use, refuse (401), scopes, revoke, expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.server.factories import Factory, UserHandle, bearer
from tunery.server.auth.tokens import issue_token
from tunery.server.config import Settings
from tunery.server.db.models import ApiKey, User
from tunery.server.db.session import Database


def test_login_gives_a_token_that_authenticates(client: TestClient, factory: Factory) -> None:
    user = factory.user(email="Ada@Example.com")
    answer = client.post("/api/auth/login", json={"email": "ada@example.com", "password": user.password})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer"
    me = client.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"


def test_login_refuses_wrong_password_and_unknown_email(client: TestClient, factory: Factory) -> None:
    user = factory.user()
    wrong = client.post("/api/auth/login", json={"email": user.email, "password": "not the password"})
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": user.password})
    assert wrong.status_code == 401
    assert unknown.status_code == 401
    assert wrong.json() == unknown.json()  # no hint which one was wrong


def test_missing_bad_tampered_and_expired_tokens_get_401(
    client: TestClient, owner: UserHandle, settings: Settings
) -> None:
    assert client.get("/api/projects").status_code == 401
    assert client.get("/api/projects", headers=bearer("garbage")).status_code == 401
    payload, signature = owner.token.split(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    assert client.get("/api/projects", headers=bearer(tampered)).status_code == 401
    secret = settings.secret_key.get_secret_value()
    expired, _ = issue_token(owner.id, secret, datetime.now(UTC) - timedelta(hours=2), 3600)
    assert client.get("/api/projects", headers=bearer(expired)).status_code == 401
    other_secret, _ = issue_token(owner.id, "another secret", datetime.now(UTC), 3600)
    assert client.get("/api/projects", headers=bearer(other_secret)).status_code == 401
    assert client.get("/api/projects", headers=owner.headers).status_code == 200


def test_inactive_user_is_refused(client: TestClient, owner: UserHandle, database: Database) -> None:
    with database.session() as session:
        user = session.get(User, owner.id)
        assert user is not None
        user.is_active = False
        session.commit()
    assert client.get("/api/projects", headers=owner.headers).status_code == 401
    login = client.post("/api/auth/login", json={"email": owner.email, "password": owner.password})
    assert login.status_code == 401


def test_api_key_is_shown_once_stored_hashed_and_works(
    client: TestClient, owner: UserHandle, database: Database
) -> None:
    created = client.post("/api/keys", json={"name": "ci"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("tny_" + created.json()["prefix"] + "_")
    listed = client.get("/api/keys", headers=owner.headers).json()
    assert [item["name"] for item in listed] == ["ci"]
    assert all("key" not in item for item in listed)
    with database.session() as session:
        row = session.scalars(select(ApiKey)).one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in repr([getattr(row, column.key) for column in ApiKey.__table__.columns])
        assert row.last_used_at is None
    me = client.get("/api/auth/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json()["id"] == owner.id
    with database.session() as session:
        assert session.scalars(select(ApiKey)).one().last_used_at is not None


def test_revoked_and_expired_keys_get_401(client: TestClient, owner: UserHandle, factory: Factory) -> None:
    key = factory.api_key(owner)
    key_id = client.get("/api/keys", headers=owner.headers).json()[0]["id"]
    assert client.get("/api/auth/me", headers=bearer(key)).status_code == 200
    assert client.delete(f"/api/keys/{key_id}", headers=owner.headers).status_code == 204
    assert client.get("/api/auth/me", headers=bearer(key)).status_code == 401
    listed = client.get("/api/keys", headers=owner.headers).json()
    assert listed[0]["revoked_at"] is not None

    expired = factory.api_key(owner, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert client.get("/api/auth/me", headers=bearer(expired)).status_code == 401
    # a right prefix with a wrong secret is refused too
    forged = expired.rsplit("_", 1)[0] + "_" + "x" * 20
    assert client.get("/api/auth/me", headers=bearer(forged)).status_code == 401


def test_key_with_expiry_days_expires_then(client: TestClient, owner: UserHandle) -> None:
    created = client.post("/api/keys", json={"name": "short", "expires_in_days": 2}, headers=owner.headers).json()
    expires = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=1, hours=23) < expires - datetime.now(UTC) <= timedelta(days=2)


def test_read_scope_key_can_read_but_not_write(client: TestClient, owner: UserHandle, factory: Factory) -> None:
    key = factory.api_key(owner, scopes=("read",))
    assert client.get("/api/projects", headers=bearer(key)).status_code == 200
    refused = client.post("/api/projects", json={"name": "x"}, headers=bearer(key))
    assert refused.status_code == 403
    assert "x" not in [item["name"] for item in client.get("/api/projects", headers=owner.headers).json()]


def test_key_cannot_mint_a_key_with_more_scopes(client: TestClient, owner: UserHandle, factory: Factory) -> None:
    write_only = factory.api_key(owner, scopes=("write",))
    answer = client.post(
        "/api/keys", json={"name": "escalate", "scopes": ["read", "write"]}, headers=bearer(write_only)
    )
    assert answer.status_code == 422
    unknown = client.post("/api/keys", json={"name": "odd", "scopes": ["root"]}, headers=owner.headers)
    assert unknown.status_code == 422


def test_users_cannot_see_or_revoke_each_others_keys(client: TestClient, factory: Factory) -> None:
    alice, bob = factory.user(), factory.user()
    factory.api_key(alice)
    key_id = client.get("/api/keys", headers=alice.headers).json()[0]["id"]
    assert client.get("/api/keys", headers=bob.headers).json() == []
    assert client.delete(f"/api/keys/{key_id}", headers=bob.headers).status_code == 404
