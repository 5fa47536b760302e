"""Registered base models: a name for a local path or hub id. ``project_id`` None: shared with every project."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from tunery.server.db.models import RegisteredModel
from tunery.server.errors import ConflictError, InvalidError
from tunery.server.services.model_inspect import ModelFacts, inspect_model_dir


def visible_to(project_id: str) -> ColumnElement[bool]:
    """Filter for the models a project can use: its own and the shared ones."""
    return or_(RegisteredModel.project_id == project_id, RegisteredModel.project_id.is_(None))


def project_models(session: Session, project_id: str) -> list[RegisteredModel]:
    return list(session.scalars(select(RegisteredModel).where(visible_to(project_id)).order_by(RegisteredModel.name)))


def facts_for(path_or_hub_id: str, inspectable: tuple[Path, ...] | None) -> ModelFacts:
    """Facts of a local folder (an absolute path); a hub id gets none.

    ``inspectable``: the folders local models must be in (the API passes the settings' model_dirs, so users
    cannot probe the server's files); None (the admin CLI) allows any folder.
    """
    folder = Path(path_or_hub_id).expanduser()
    if not folder.is_absolute():
        return ModelFacts(details={"source": "hub"})
    real = folder.resolve()
    if inspectable is not None and not any(real.is_relative_to(root.resolve()) for root in inspectable):
        raise InvalidError(
            "a local model must be inside the server's model folders (TUNERY_MODEL_DIRS); "
            "an admin can register others with `tunery models add`"
        )
    if not real.is_dir():
        raise InvalidError(f"{path_or_hub_id} is not a folder")
    facts = inspect_model_dir(real)
    facts.details["source"] = "local"
    return facts


def register_model(
    session: Session,
    project_id: str | None,
    name: str,
    path_or_hub_id: str,
    facts: ModelFacts,
    *,
    architecture: str | None = None,
    num_parameters: int | None = None,
    template: str | None = None,
) -> RegisteredModel:
    """Adds the model (not committed); explicit values win over what the folder says."""
    same = select(RegisteredModel.id).where(RegisteredModel.name == name)
    same = same.where(RegisteredModel.project_id == project_id if project_id else RegisteredModel.project_id.is_(None))
    if session.scalar(same) is not None:
        raise ConflictError(f"a model named '{name}' is already registered here")
    model = RegisteredModel(
        project_id=project_id,
        name=name,
        path_or_hub_id=path_or_hub_id,
        architecture=architecture or facts.architecture,
        num_parameters=num_parameters or facts.num_parameters,
        template=template or facts.template,
        details=facts.details,
    )
    session.add(model)
    session.flush()
    return model
