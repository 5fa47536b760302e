"""Artifact downloads stream with HTTP Range (206, Content-Range, suffix ranges, 416) and a folder artifact
comes as a zip of its own files only; deleting an artifact removes its files (never outside the storage
root) and its row, and needs the member role."""

from __future__ import annotations

import io
import zipfile

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.server.export_support import MODEL_FILES, export_job
from tests.server.factories import Factory
from tests.server.jobs_support import Catalog
from tunery.server.config import Settings
from tunery.server.db.models import Artifact, JobStatus, Role
from tunery.server.db.session import Database

BLOB = bytes(range(256)) * 40  # 10240 bytes


def file_artifact(database: Database, settings: Settings, project_id: str, name: str = "blob.bin") -> str:
    job_id = Catalog(database, settings).job(project_id, JobStatus.SUCCEEDED)
    folder = settings.storage_root / "jobs" / job_id / "output"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(BLOB)
    with database.session() as session:
        path = f"jobs/{job_id}/output/{name}"
        session.add(Artifact(job_id=job_id, name=name, kind="model", path=path, size_bytes=len(BLOB)))
        session.commit()
    return job_id


def test_range_requests(client: TestClient, factory: Factory, database: Database, settings: Settings) -> None:
    project = factory.project()
    headers = project.owner.headers
    job_id = file_artifact(database, settings, project.id)
    path = f"/api/jobs/{job_id}/artifacts/blob.bin"

    whole = client.get(path, headers=headers)
    assert whole.status_code == 200 and whole.content == BLOB
    assert whole.headers["accept-ranges"] == "bytes"

    part = client.get(path, headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == BLOB[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(BLOB)}"
    assert part.headers["content-length"] == "100"

    resumed = client.get(path, headers={**headers, "Range": "bytes=10000-"})
    assert resumed.status_code == 206 and resumed.content == BLOB[10000:]
    suffix = client.get(path, headers={**headers, "Range": "bytes=-300"})
    assert suffix.status_code == 206 and suffix.content == BLOB[-300:]
    assert suffix.headers["content-range"] == f"bytes {len(BLOB) - 300}-{len(BLOB) - 1}/{len(BLOB)}"

    outside = client.get(path, headers={**headers, "Range": "bytes=20000-20100"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(BLOB)}"

    stranger = factory.user()
    assert client.get(path, headers={**stranger.headers, "Range": "bytes=0-9"}).status_code == 404


def test_a_folder_artifact_is_zipped_without_the_other_artifacts_inside_it(
    client: TestClient, factory: Factory, database: Database, settings: Settings
) -> None:
    project = factory.project()
    job_id = export_job(database, settings, project.id, None, ("F16",))
    response = client.get(f"/api/jobs/{job_id}/artifacts/model", headers=project.owner.headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    names = set(zipfile.ZipFile(io.BytesIO(response.content)).namelist())
    assert names == set(MODEL_FILES)  # no GGUF file, onnx/ folder or card


def test_deleting_artifacts(client: TestClient, factory: Factory, database: Database, settings: Settings) -> None:
    viewer, member = factory.user(), factory.user()
    project = factory.project(members={viewer: Role.VIEWER, member: Role.MEMBER})
    job_id = file_artifact(database, settings, project.id)
    path = f"/api/jobs/{job_id}/artifacts/blob.bin"
    file = settings.storage_root / "jobs" / job_id / "output" / "blob.bin"

    assert client.delete(path, headers=viewer.headers).status_code == 403
    assert client.delete(path, headers=factory.user().headers).status_code == 404
    assert file.exists()
    assert client.delete(path, headers=member.headers).status_code == 204
    assert not file.exists()
    assert client.get(path, headers=member.headers).status_code == 404
    assert client.delete(path, headers=member.headers).status_code == 404
    assert client.get(f"/api/jobs/{job_id}/artifacts", headers=member.headers).json() == []

    # a stored path that leads outside the storage root is never touched
    outside = settings.home / "keep.txt"
    outside.write_text("precious")
    with database.session() as session:
        session.add(Artifact(job_id=job_id, name="evil", kind="model", path="../home/keep.txt", size_bytes=1))
        session.commit()
    assert client.delete(f"/api/jobs/{job_id}/artifacts/evil", headers=member.headers).status_code == 404
    assert outside.read_text() == "precious"

    # an export's folder artifact: its own files go, the other artifacts' stay (no GGUF left: tokenizer too)
    export_id = export_job(database, settings, project.id, None, ())
    output = settings.storage_root / "jobs" / export_id / "output"
    assert client.delete(f"/api/jobs/{export_id}/artifacts/model", headers=member.headers).status_code == 204
    assert sorted(p.name for p in output.iterdir()) == ["README.md", "onnx"]
    assert client.delete(f"/api/jobs/{export_id}/artifacts/onnx", headers=member.headers).status_code == 204
    assert sorted(p.name for p in output.iterdir()) == ["README.md"]
    with database.session() as session:
        assert session.scalars(select(Artifact.name).where(Artifact.job_id == export_id)).all() == ["card"]
