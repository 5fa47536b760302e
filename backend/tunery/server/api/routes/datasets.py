"""Datasets: create, upload immutable versions (multipart), validation reports, previews, delete."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tunery.server.api.deps import (
    PrincipalDep,
    ProjectMember,
    ProjectViewer,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from tunery.server.api.schemas.datasets import (
    DatasetCreate,
    DatasetPublic,
    DatasetVersionPublic,
    PreviewPublic,
    ReportPublic,
)
from tunery.server.auth.access import require_access
from tunery.server.auth.principal import Principal
from tunery.server.config import Settings
from tunery.server.db.models import Dataset, RegisteredModel, Role
from tunery.server.errors import InvalidError, NotFoundError
from tunery.server.idempotency import Idempotency, IdempotencyDep, ManualIdempotencyDep
from tunery.server.services import base_models, datasets
from tunery.server.services.preview import preview_spec, run_preview
from tunery.server.storage import Storage
from tunery.server.uploads import StagedUpload, receive_upload

router = APIRouter(tags=["datasets"])

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "entry": {"type": "string", "description": "a dataset_info.json entry (JSON)"},
                        "entry_name": {"type": "string", "description": "entry of an uploaded dataset_info.json"},
                        "stage": {
                            "type": "string",
                            "enum": list(datasets.STAGES),
                            "description": "stage the rows are checked for; default: from the entry (rm, kto or sft)",
                        },
                    },
                }
            }
        },
    }
}


def _public(dataset: Dataset) -> DatasetPublic:
    newest = max(dataset.versions, key=lambda version: version.version, default=None)
    return DatasetPublic(
        id=dataset.id,
        project_id=dataset.project_id,
        name=dataset.name,
        description=dataset.description,
        created_at=dataset.created_at,
        latest_version=newest.version if newest else None,
        stages=datasets.stages_fed(newest.stage) if newest else [],
    )


def _dataset_for_upload(session: Session, principal: Principal, dataset_id: str) -> Dataset:
    """The dataset, checked; the transaction ends so no connection is held while the files stream in."""
    dataset = dataset_for(session, principal, dataset_id, Role.MEMBER)
    session.commit()
    return dataset


def dataset_for(session: Session, principal: Principal, dataset_id: str, minimum: Role) -> Dataset:
    """The dataset, if the principal has at least ``minimum`` in its project (404 otherwise)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFoundError("dataset not found")
    require_access(session, principal, dataset.project_id, minimum, what="dataset")
    return dataset


@router.post("/api/projects/{project_id}/datasets", status_code=status.HTTP_201_CREATED)
def create_dataset(
    body: DatasetCreate, access: ProjectMember, session: SessionDep, idem: IdempotencyDep
) -> DatasetPublic:
    """A new, empty dataset; upload its files as versions."""
    dataset = datasets.create_dataset(session, access.project_id, body.name, body.description)
    out = idem.remember(session, status.HTTP_201_CREATED, _public(dataset))
    session.commit()
    return out


@router.get("/api/projects/{project_id}/datasets")
def list_datasets(access: ProjectViewer, session: SessionDep) -> list[DatasetPublic]:
    rows = session.scalars(
        select(Dataset)
        .where(Dataset.project_id == access.project_id)
        .options(selectinload(Dataset.versions))
        .order_by(Dataset.name)
    )
    return [_public(dataset) for dataset in rows]


@router.get("/api/datasets/{dataset_id}")
def get_dataset(dataset_id: str, session: SessionDep, principal: PrincipalDep) -> DatasetPublic:
    return _public(dataset_for(session, principal, dataset_id, Role.VIEWER))


@router.delete("/api/datasets/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: str, session: SessionDep, principal: PrincipalDep, storage: StorageDep) -> None:
    """Delete the dataset and its files; 409 while a job uses one of its versions."""
    datasets.delete_dataset(session, storage, dataset_for(session, principal, dataset_id, Role.MEMBER))


def _upload_hash(request: Request, upload: StagedUpload) -> str:
    digest = hashlib.sha256(f"POST\n{request.url.path}\n".encode())
    for key in sorted(upload.fields):
        digest.update(f"field\0{key}\0{upload.fields[key]}\n".encode())
    for item in sorted(upload.files, key=lambda f: f.name):
        digest.update(f"file\0{item.name}\0{item.sha256}\n".encode())
    return digest.hexdigest()


def _store_version(
    session: Session, storage: Storage, settings: Settings, dataset: Dataset, upload: StagedUpload, idem: Idempotency
) -> DatasetVersionPublic:
    stage = upload.fields.get("stage") or None
    if stage is not None and stage not in datasets.STAGES:
        raise InvalidError(f"stage must be one of {', '.join(datasets.STAGES)}, got '{stage}'")
    version = datasets.add_version(session, storage, dataset, upload, stage)
    try:
        datasets.run_validation(settings.storage_root, version, dataset.name)
        out = idem.remember(session, status.HTTP_201_CREATED, DatasetVersionPublic.model_validate(version))
    except BaseException:
        storage.remove(storage.root / version.storage_path)  # published, but its row is rolled back
        raise
    datasets.commit_version(session, storage, version)
    return out


@router.post("/api/datasets/{dataset_id}/versions", status_code=status.HTTP_201_CREATED, openapi_extra=UPLOAD_BODY)
async def upload_version(
    dataset_id: str,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    settings: SettingsDep,
    idem: ManualIdempotencyDep,
) -> DatasetVersionPublic:
    """Upload files (multipart ``files``) as a new immutable version; its rows are validated right away.

    Over TUNERY_UPLOAD_LIMIT_BYTES: 413; a file name with ``..`` or an absolute path: 422 (nothing is kept).
    """
    dataset = await run_in_threadpool(_dataset_for_upload, session, principal, dataset_id)
    upload = await receive_upload(request, storage, settings.upload_limit_bytes)
    try:
        await run_in_threadpool(idem.begin, _upload_hash(request, upload))
        return await run_in_threadpool(_store_version, session, storage, settings, dataset, upload, idem)
    finally:
        if upload.folder is not None and upload.folder.exists():
            storage.remove(upload.folder)  # not published


@router.get("/api/datasets/{dataset_id}/versions")
def list_versions(dataset_id: str, session: SessionDep, principal: PrincipalDep) -> list[DatasetVersionPublic]:
    dataset = dataset_for(session, principal, dataset_id, Role.VIEWER)
    return [DatasetVersionPublic.model_validate(version) for version in dataset.versions]


@router.get("/api/datasets/{dataset_id}/versions/{version}")
def get_version(dataset_id: str, version: int, session: SessionDep, principal: PrincipalDep) -> DatasetVersionPublic:
    dataset = dataset_for(session, principal, dataset_id, Role.VIEWER)
    return DatasetVersionPublic.model_validate(datasets.get_version(session, dataset, version))


@router.delete("/api/datasets/{dataset_id}/versions/{version}", status_code=status.HTTP_204_NO_CONTENT)
def delete_version(
    dataset_id: str, version: int, session: SessionDep, principal: PrincipalDep, storage: StorageDep
) -> None:
    """Delete one version and its files; 409 while a job uses it."""
    dataset = dataset_for(session, principal, dataset_id, Role.MEMBER)
    datasets.delete_version(session, storage, datasets.get_version(session, dataset, version))


@router.get("/api/datasets/{dataset_id}/versions/{version}/report")
def get_report(
    dataset_id: str,
    version: int,
    session: SessionDep,
    principal: PrincipalDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReportPublic:
    """The validation report: counts, and row errors (file, row, field, message) from ``offset``."""
    dataset = dataset_for(session, principal, dataset_id, Role.VIEWER)
    row = datasets.get_version(session, dataset, version)
    report = row.report or {}
    return ReportPublic.model_validate({
        "version": row.version,
        "status": row.status,
        "stage": row.stage,
        "rows_total": row.rows_total,
        "rows_valid": row.rows_valid,
        "error": report.get("error"),
        "error_count": report.get("error_count", 0),
        "warnings": report.get("warnings", []),
        "errors": report.get("errors", [])[offset : offset + limit],
        "offset": offset,
        "validated_at": report.get("validated_at"),
    })  # fmt: skip


@router.post("/api/datasets/{dataset_id}/versions/{version}/validate")
def revalidate(
    dataset_id: str, version: int, session: SessionDep, principal: PrincipalDep, settings: SettingsDep
) -> DatasetVersionPublic:
    """Validate the version again (e.g. after the engine learned a format); the files do not change."""
    dataset = dataset_for(session, principal, dataset_id, Role.MEMBER)
    row = datasets.get_version(session, dataset, version)
    return DatasetVersionPublic.model_validate(
        datasets.validate_dataset_version(session, settings.storage_root, row.id)
    )


@router.get("/api/datasets/{dataset_id}/versions/{version}/preview")
def preview(
    dataset_id: str,
    version: int,
    model: Annotated[str, Query(description="a model id or name visible to the project")],
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    n: Annotated[int, Query(ge=1, le=20)] = 3,
    template: Annotated[str | None, Query(max_length=100)] = None,
    cutoff_len: Annotated[int, Query(ge=1, le=1_000_000)] = 2048,
) -> PreviewPublic:
    """Examples rendered with the template (trained vs masked spans) and token-length statistics."""
    dataset = dataset_for(session, principal, dataset_id, Role.VIEWER)
    row = datasets.get_version(session, dataset, version)
    registered = session.scalars(
        select(RegisteredModel)
        .where(base_models.visible_to(dataset.project_id))
        .where((RegisteredModel.id == model) | (RegisteredModel.name == model))
    ).first()
    if registered is None:
        raise InvalidError(f"model '{model}' is not registered for this project")
    spec = preview_spec(settings.storage_root, row, dataset.name, registered, template, cutoff_len)
    session.close()  # the preview can take a while; do not hold a connection meanwhile
    return PreviewPublic.model_validate(run_preview(spec, n, settings.preview_timeout_seconds))
