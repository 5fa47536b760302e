"""Dataset versions imported from a hub: the worker downloads them; the version shows the progress."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from tunery.server.api.deps import PrincipalDep, SessionDep, SettingsDep, StorageDep
from tunery.server.api.routes.datasets import dataset_for
from tunery.server.api.schemas.base import ErrorBody
from tunery.server.api.schemas.datasets import DatasetVersionPublic, HubImportCreate
from tunery.server.db.models import Role
from tunery.server.errors import InvalidError
from tunery.server.idempotency import IdempotencyDep
from tunery.server.services import dataset_import, datasets

router = APIRouter(tags=["datasets"])

Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Your role in the project does not allow this."},
    404: {"model": ErrorBody, "description": "Not found, or in a project you are not a member of."},
    422: {"model": ErrorBody, "description": "Invalid: an unknown stage or token secret, an entry naming files."},
}


@router.post(
    "/api/datasets/{dataset_id}/versions/import-hub",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatasetVersionPublic,
    responses=ERRORS,
)
def import_hub_version(
    dataset_id: str,
    body: HubImportCreate,
    session: SessionDep,
    principal: PrincipalDep,
    storage: StorageDep,
    settings: SettingsDep,
    idem: IdempotencyDep,
) -> DatasetVersionPublic:
    """A new version imported from a hub dataset's split: status ``importing`` with ``progress`` (bytes
    downloaded, rows written) until the worker has written and validated it (``valid`` / ``invalid``), or
    ``failed`` with the error in its report (e.g. the hub is unreachable and the dataset is not cached)."""
    dataset = dataset_for(session, principal, dataset_id, Role.MEMBER)
    if body.stage is not None and body.stage not in datasets.STAGES:
        raise InvalidError(f"stage must be one of {', '.join(datasets.STAGES)}, got '{body.stage}'")
    source = body.model_dump(include={"hub", "repo", "subset", "split", "revision", "token_secret"})
    version = dataset_import.start_import(session, storage, dataset, source, body.entry, body.stage)
    out = idem.remember(session, status.HTTP_202_ACCEPTED, DatasetVersionPublic.model_validate(version))
    session.commit()
    dataset_import.enqueue(session, version, settings)
    return out
