"""Experiments: named groups of jobs inside a project."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tunery.server.api.deps import PrincipalDep, ProjectMember, ProjectViewer, SessionDep
from tunery.server.api.schemas.projects import ExperimentCreate, ExperimentPublic, ExperimentUpdate
from tunery.server.auth.access import require_access
from tunery.server.db.models import Experiment, Role
from tunery.server.errors import ConflictError, NotFoundError
from tunery.server.idempotency import IdempotencyDep

router = APIRouter(tags=["experiments"])


@router.post("/api/projects/{project_id}/experiments", status_code=status.HTTP_201_CREATED)
def create_experiment(
    body: ExperimentCreate, access: ProjectMember, session: SessionDep, idem: IdempotencyDep
) -> ExperimentPublic:
    experiment = Experiment(project_id=access.project_id, name=body.name, description=body.description)
    session.add(experiment)
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"an experiment named '{body.name}' already exists in this project") from exc
    out = idem.remember(session, status.HTTP_201_CREATED, ExperimentPublic.model_validate(experiment))
    session.commit()
    return out


@router.get("/api/projects/{project_id}/experiments")
def list_experiments(access: ProjectViewer, session: SessionDep) -> list[ExperimentPublic]:
    rows = session.scalars(
        select(Experiment).where(Experiment.project_id == access.project_id).order_by(Experiment.created_at)
    )
    return [ExperimentPublic.model_validate(row) for row in rows]


def _experiment(session: SessionDep, principal: PrincipalDep, experiment_id: str, minimum: Role) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFoundError("experiment not found")
    require_access(session, principal, experiment.project_id, minimum, what="experiment")
    return experiment


@router.get("/api/experiments/{experiment_id}")
def get_experiment(experiment_id: str, session: SessionDep, principal: PrincipalDep) -> ExperimentPublic:
    return ExperimentPublic.model_validate(_experiment(session, principal, experiment_id, Role.VIEWER))


@router.patch("/api/experiments/{experiment_id}")
def update_experiment(
    experiment_id: str, body: ExperimentUpdate, session: SessionDep, principal: PrincipalDep
) -> ExperimentPublic:
    experiment = _experiment(session, principal, experiment_id, Role.MEMBER)
    experiment.description = body.description
    session.commit()
    return ExperimentPublic.model_validate(experiment)


@router.delete("/api/experiments/{experiment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_experiment(experiment_id: str, session: SessionDep, principal: PrincipalDep) -> None:
    """Deletes the experiment; its jobs stay (no longer grouped)."""
    session.delete(_experiment(session, principal, experiment_id, Role.MEMBER))
    session.commit()
