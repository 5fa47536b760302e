"""Project secrets (hub tokens for exports): members list the names, owners (and admins in the project) set
and delete them. Values are never returned."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from tunery.server.api.deps import ProjectMember, ProjectViewer, SessionDep, SettingsDep
from tunery.server.api.schemas.base import ErrorBody
from tunery.server.api.schemas.secrets import SecretPublic, SecretPut
from tunery.server.auth.access import ProjectAccess
from tunery.server.db.models import Role
from tunery.server.errors import ForbiddenError
from tunery.server.services import secrets

router = APIRouter(prefix="/api/projects/{project_id}/secrets", tags=["secrets"])

Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Your role in the project does not allow this."},
    404: {"model": ErrorBody, "description": "No such project (or secret), or not one of yours."},
}
SecretName = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", description="Letters, digits, '.', '_', '-'.")
]


def _may_write(access: ProjectAccess) -> None:
    if access.role != Role.OWNER and not access.principal.user.is_admin:
        raise ForbiddenError("setting and deleting project secrets needs the owner role (or an admin)")


@router.get("", response_model=list[SecretPublic], responses=ERRORS)
def list_secrets(access: ProjectMember, session: SessionDep) -> list[SecretPublic]:
    """The project's secrets: names and dates, never values."""
    return [SecretPublic.model_validate(row) for row in secrets.list_secrets(session, access.project_id)]


@router.put("/{name}", response_model=SecretPublic, responses={**ERRORS, 422: {"model": ErrorBody}})
def put_secret(
    name: SecretName, body: SecretPut, access: ProjectViewer, session: SessionDep, settings: SettingsDep
) -> SecretPublic:
    """Create or replace a secret; its value is stored encrypted and never returned."""
    _may_write(access)
    row = secrets.put_secret(session, settings, access.project_id, name, body.value)
    out = SecretPublic.model_validate(row)
    session.commit()
    return out


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete_secret(name: SecretName, access: ProjectViewer, session: SessionDep) -> None:
    _may_write(access)
    secrets.delete_secret(session, access.project_id, name)
    session.commit()
