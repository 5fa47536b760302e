"""Base models a project can fine-tune: its own plus the shared ones an admin registered."""

from __future__ import annotations

from fastapi import APIRouter, status

from tunery.server.api.deps import PrincipalDep, ProjectMember, ProjectViewer, SessionDep, SettingsDep
from tunery.server.api.schemas.models import BaseModelCreate, BaseModelPublic, BaseModelUpdate
from tunery.server.auth.access import require_access
from tunery.server.auth.principal import Principal
from tunery.server.db.models import RegisteredModel, Role
from tunery.server.errors import ForbiddenError, NotFoundError
from tunery.server.idempotency import IdempotencyDep
from tunery.server.services import base_models

router = APIRouter(tags=["models"])


@router.post("/api/projects/{project_id}/models", status_code=status.HTTP_201_CREATED)
def register_model(
    body: BaseModelCreate, access: ProjectMember, session: SessionDep, settings: SettingsDep, idem: IdempotencyDep
) -> BaseModelPublic:
    """Register a hub id, or a folder inside the server's model folders (its config.json is read)."""
    facts = base_models.facts_for(body.path_or_hub_id, settings.model_dirs)
    model = base_models.register_model(
        session,
        access.project_id,
        body.name,
        body.path_or_hub_id,
        facts,
        architecture=body.architecture,
        num_parameters=body.num_parameters,
        template=body.template,
    )
    out = idem.remember(session, status.HTTP_201_CREATED, BaseModelPublic.model_validate(model))
    session.commit()
    return out


@router.get("/api/projects/{project_id}/models")
def list_models(access: ProjectViewer, session: SessionDep) -> list[BaseModelPublic]:
    return [BaseModelPublic.model_validate(m) for m in base_models.project_models(session, access.project_id)]


def _model(session: SessionDep, principal: Principal, model_id: str, minimum: Role) -> RegisteredModel:
    model = session.get(RegisteredModel, model_id)
    if model is None:
        raise NotFoundError("model not found")
    if model.project_id is not None:
        require_access(session, principal, model.project_id, minimum, what="model")
    elif minimum != Role.VIEWER and not principal.user.is_admin:
        raise ForbiddenError("shared models are changed by admins")
    return model


@router.get("/api/models/{model_id}")
def get_model(model_id: str, session: SessionDep, principal: PrincipalDep) -> BaseModelPublic:
    return BaseModelPublic.model_validate(_model(session, principal, model_id, Role.VIEWER))


@router.patch("/api/models/{model_id}")
def update_model(model_id: str, body: BaseModelUpdate, session: SessionDep, principal: PrincipalDep) -> BaseModelPublic:
    model = _model(session, principal, model_id, Role.MEMBER)
    model.template = body.template
    session.commit()
    return BaseModelPublic.model_validate(model)


@router.delete("/api/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: str, session: SessionDep, principal: PrincipalDep) -> None:
    """Forget the model (files are not touched); jobs that used it keep their copy of the spec."""
    session.delete(_model(session, principal, model_id, Role.MEMBER))
    session.commit()
