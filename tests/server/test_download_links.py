"""Signed download links: a plain GET (no Authorization header) streams the artifact with Range support, for
10 minutes, only for what was signed, and only while the signer may still see the job."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import delete

from tests.server.factories import Factory
from tests.server.test_artifact_files import BLOB, file_artifact
from tunery.server.auth.download_links import DownloadGrant, issue_link_token
from tunery.server.auth.tokens import PREFIX as LOGIN_PREFIX
from tunery.server.config import Settings
from tunery.server.db.base import utcnow
from tunery.server.db.models import Membership
from tunery.server.db.session import Database


def test_a_link_downloads_without_the_bearer_token(
    client: TestClient, factory: Factory, database: Database, settings: Settings
) -> None:
    project = factory.project()
    job_id = file_artifact(database, settings, project.id)
    linked = client.post(f"/api/jobs/{job_id}/artifacts/blob.bin/link", headers=project.owner.headers)
    assert linked.status_code == 200, linked.text
    url = linked.json()["url"]
    assert url.startswith("/api/downloads/")

    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == BLOB
    assert 'filename="blob.bin"' in whole.headers["content-disposition"]
    part = client.get(url, headers={"Range": "bytes=-300"})
    assert part.status_code == 206 and part.content == BLOB[-300:]

    # the link's token is no login token, and a login token is no link
    token = url.rsplit("/", 1)[1]
    relabelled = LOGIN_PREFIX + token.split("_", 1)[1]
    assert client.get("/api/projects", headers={"Authorization": f"Bearer {relabelled}"}).status_code == 401
    login = project.owner.headers["Authorization"].split(" ", 1)[1]
    assert client.get(f"/api/downloads/{login}").status_code == 404


def test_links_expire_name_one_artifact_and_need_access(
    client: TestClient, factory: Factory, database: Database, settings: Settings
) -> None:
    project = factory.project()
    job_id = file_artifact(database, settings, project.id)
    stranger = factory.user()
    assert client.post(f"/api/jobs/{job_id}/artifacts/blob.bin/link", headers=stranger.headers).status_code == 404
    assert client.post(f"/api/jobs/{job_id}/artifacts/nope/link", headers=project.owner.headers).status_code == 404

    secret = settings.secret_key.get_secret_value()
    grant = DownloadGrant(project.owner.id, job_id, "blob.bin")
    expired, _ = issue_link_token(grant, secret, utcnow() - timedelta(minutes=11))
    assert client.get(f"/api/downloads/{expired}").status_code == 404
    tampered = issue_link_token(grant, secret, utcnow())[0]
    tampered = tampered[:-2] + ("AA" if not tampered.endswith("AA") else "BB")
    assert client.get(f"/api/downloads/{tampered}").status_code == 404

    token, _ = issue_link_token(grant, secret, utcnow())
    assert client.get(f"/api/downloads/{token}").status_code == 200
    with database.session() as session:  # the signer leaves the project: the link stops working
        session.execute(delete(Membership).where(Membership.project_id == project.id))
        session.commit()
    assert client.get(f"/api/downloads/{token}").status_code == 404
