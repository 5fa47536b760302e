"""OpenAI files API (``/v1/files``): fine-tuning data stored as datasets of the caller's project."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep, StorageDep
from tunery.server.api.routes.openai_common import ListedProjects, TargetProject, openai_router, page
from tunery.server.auth.access import require_access
from tunery.server.db.models import Role
from tunery.server.services import openai_files
from tunery.server.uploads import receive_upload

router = openai_router("openai-files")

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": ["fine-tune"]},
                    },
                }
            }
        },
    }
}


@router.post("/v1/files", openapi_extra=UPLOAD_BODY)
async def upload_file(
    request: Request, session: SessionDep, settings: SettingsDep, storage: StorageDep, project_id: TargetProject
) -> dict[str, Any]:
    """Upload chat-format or preference JSONL (purpose ``fine-tune``); every row is validated."""
    session.commit()  # no transaction stays open while the file streams in
    upload = await receive_upload(request, storage, settings.upload_limit_bytes)
    try:
        version = await run_in_threadpool(openai_files.store_file, session, storage, project_id, upload)
    finally:
        if upload.folder is not None and upload.folder.exists():
            storage.remove(upload.folder)
    return openai_files.file_object(version)


@router.get("/v1/files")
def list_files(
    session: SessionDep,
    projects: ListedProjects,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    if purpose not in (None, openai_files.PURPOSE):
        return page([], False)
    rows, more = openai_files.list_files(session, projects, limit, after, order)
    return page([openai_files.file_object(row) for row in rows], more)


@router.get("/v1/files/{file_id}")
def get_file(file_id: str, session: SessionDep, projects: ListedProjects) -> dict[str, Any]:
    return openai_files.file_object(openai_files.find_file(session, projects, file_id))


@router.get("/v1/files/{file_id}/content", response_class=FileResponse, response_model=None)
def file_content(file_id: str, session: SessionDep, projects: ListedProjects, storage: StorageDep) -> FileResponse:
    version = openai_files.find_file(session, projects, file_id)
    path = openai_files.content_path(storage, version)
    return FileResponse(path, media_type="application/jsonl", filename=path.name)


@router.delete("/v1/files/{file_id}")
def delete_file(
    file_id: str, session: SessionDep, principal: PrincipalDep, projects: ListedProjects, storage: StorageDep
) -> dict[str, Any]:
    """Delete the file; refused (409) while a fine-tuning job uses it."""
    version = openai_files.find_file(session, projects, file_id)
    require_access(session, principal, version.dataset.project_id, Role.MEMBER, what="file")
    openai_files.delete_file(session, storage, version)
    return {"id": file_id, "object": "file", "deleted": True}
