"""Which models a caller may serve, by OpenAI model id: registered base models of their projects (and the
shared ones) and the fine-tunes of their projects' jobs.

Ids: a base model is its registered name (``<project slug>/<name>`` when two visible models share a name);
a fine-tune is ``ft:<base>:<project slug>:<job id>``, one of its checkpoints
``ft:<base>:<project slug>:<job id>:ckpt-<step>``; an export job's merged model is
``ft:<base>:<project slug>:<export job id>``, each of its GGUF files ``...:<export job id>:gguf-<type>``
(served_exports.py).

Reward models (scored through /v1/score, never generated with): the results of jobs whose stage the catalog
marks ``reward_model`` (stage rm), and registered models of a sequence-classification architecture.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.auth.access import member_project_ids
from tunery.server.auth.principal import Principal
from tunery.server.config import Settings
from tunery.server.db.models import Checkpoint, Job, JobKind, JobStatus, Project, RegisteredModel
from tunery.server.services.model_inspect import is_reward_architecture
from tunery.serving.errors import OpenAIError, model_not_found
from tunery.serving.types import ServeTarget
from tunery.spec.stages import STAGES

FT_PREFIX = "ft:"
CKPT_PREFIX = "ckpt-"
#: an export's GGUF file: ``...:<export job id>:gguf-<type lowercased>``
GGUF_PREFIX = "gguf-"


@dataclass(frozen=True)
class FineTuneId:
    base: str
    project: str
    job_id: str
    step: int | None = None
    #: the GGUF type (lowercased) of an export's GGUF file; None for a job's model or checkpoint
    gguf: str | None = None

    def __str__(self) -> str:
        text = f"{FT_PREFIX}{self.base}:{self.project}:{self.job_id}"
        if self.step is not None:
            text = f"{text}:{CKPT_PREFIX}{self.step}"
        return text if self.gguf is None else f"{text}:{GGUF_PREFIX}{self.gguf}"


def parse_fine_tune_id(model: str) -> FineTuneId | None:
    """The parts of an ``ft:`` id (the base name may itself hold colons), or None for other ids."""
    if not model.startswith(FT_PREFIX):
        return None
    parts = model[len(FT_PREFIX) :].split(":")
    step = gguf = None
    if parts and parts[-1].startswith(GGUF_PREFIX):
        gguf = parts.pop()[len(GGUF_PREFIX) :]
        if not gguf or gguf != gguf.lower():
            return None
    elif parts and parts[-1].startswith(CKPT_PREFIX):
        number = parts.pop()[len(CKPT_PREFIX) :]
        if not number.isdigit():
            return None
        step = int(number)
    if len(parts) < 3 or not all(parts[-2:]) or not parts[0]:
        return None
    return FineTuneId(":".join(parts[:-2]), parts[-2], parts[-1], step, gguf)


def projects_of(session: Session, principal: Principal) -> dict[str, Project]:
    rows = session.scalars(select(Project).where(Project.id.in_(member_project_ids(principal.user_id))))
    return {project.id: project for project in rows}


def _visible_models(session: Session, projects: dict[str, Project]) -> list[RegisteredModel]:
    query = select(RegisteredModel).where(
        RegisteredModel.project_id.in_(list(projects)) | RegisteredModel.project_id.is_(None)
    )
    return list(session.scalars(query.order_by(RegisteredModel.name)))


def _base_ids(models: list[RegisteredModel], projects: dict[str, Project]) -> dict[str, RegisteredModel]:
    counts = Counter(model.name for model in models)
    ids: dict[str, RegisteredModel] = {}
    for model in models:
        if counts[model.name] == 1 or model.project_id is None:
            ids[model.name] = model
        else:
            ids[f"{projects[model.project_id].slug}/{model.name}"] = model
    return ids


def _timestamp(model: RegisteredModel | Job | Checkpoint) -> int:
    return int(model.created_at.timestamp())


def base_target(model_id: str, model: RegisteredModel, projects: dict[str, Project]) -> ServeTarget:
    owner = projects[model.project_id].slug if model.project_id in projects else "tunery"
    reward = is_reward_architecture(model.architecture)
    return ServeTarget(model_id, model.path_or_hub_id, model.template, None, owner, _timestamp(model), reward)


def base_name(session: Session, job: Job) -> str:
    model = session.get(RegisteredModel, job.base_model_id) if job.base_model_id else None
    if model is not None:
        return model.name
    return Path(str(job.spec.get("model", {}).get("model_name_or_path", "model"))).name


def weights_target(model_id: str, job: Job, folder: Path, owner: str, created: int) -> ServeTarget | None:
    """A LoRA folder on the job's base model, or a full model folder; None when neither is there."""
    template = job.spec.get("data", {}).get("template")
    tool_format = job.spec.get("data", {}).get("tool_format")
    base = str(job.spec.get("model", {}).get("model_name_or_path", ""))
    stage = STAGES.get(str(job.spec.get("method", {}).get("stage", "sft")))
    reward = stage is not None and stage.reward_model
    if (folder / "adapter_config.json").is_file():
        return ServeTarget(model_id, base, template, str(folder), owner, created, reward, tool_format)
    if (folder / "config.json").is_file():
        return ServeTarget(model_id, str(folder), template, None, owner, created, reward, tool_format)
    return None


def job_targets(session: Session, settings: Settings, job: Job, project: Project) -> list[ServeTarget]:
    """The final model of a succeeded job and the checkpoints (still on disk) of a finished one; an export
    job's servable artifacts."""
    if job.kind == JobKind.EXPORT:
        from tunery.server.services.served_exports import export_targets

        return export_targets(session, settings, job, project, base_name(session, job)) if job.status.finished else []
    if job.kind != JobKind.TRAIN or not job.status.finished:
        return []
    base = base_name(session, job)
    targets = []
    if job.status == JobStatus.SUCCEEDED and job.output_dir:
        ident = str(FineTuneId(base, project.slug, job.id))
        target = weights_target(ident, job, settings.storage_root / job.output_dir, project.slug, _timestamp(job))
        if target is not None:
            targets.append(target)
    checkpoints = session.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.deleted.is_(False)).order_by(Checkpoint.step)
    )
    for checkpoint in checkpoints:
        ident = str(FineTuneId(base, project.slug, job.id, checkpoint.step))
        folder = settings.storage_root / checkpoint.path
        target = weights_target(ident, job, folder, project.slug, _timestamp(checkpoint))
        if target is not None:
            targets.append(target)
    return targets


def list_targets(session: Session, principal: Principal, settings: Settings) -> list[ServeTarget]:
    projects = projects_of(session, principal)
    ids = _base_ids(_visible_models(session, projects), projects)
    targets = [base_target(model_id, model, projects) for model_id, model in ids.items()]
    finished = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    jobs = session.scalars(
        select(Job)
        .where(Job.project_id.in_(list(projects)))
        .where(
            (Job.kind == JobKind.TRAIN) & Job.status.in_(finished)
            | (Job.kind == JobKind.EXPORT) & (Job.status == JobStatus.SUCCEEDED)
        )
        .order_by(Job.created_at)
    )
    for job in jobs:
        targets += job_targets(session, settings, job, projects[job.project_id])
    return targets


def resolve_target(session: Session, principal: Principal, settings: Settings, model_id: str) -> ServeTarget:
    """The target for ``model_id`` if the caller may use it; OpenAI's 404 otherwise."""
    return resolve_with_base(session, principal, settings, model_id)[0]


def resolve_with_base(
    session: Session, principal: Principal, settings: Settings, model_id: str
) -> tuple[ServeTarget, str | None]:
    """The target for ``model_id`` and the id of the registered base model under it (None when that model
    was removed); OpenAI's 404 (or 400 for an ambiguous name) when the caller may not use it."""
    projects = projects_of(session, principal)
    fine_tune = parse_fine_tune_id(model_id)
    if fine_tune is None:
        ids = _base_ids(_visible_models(session, projects), projects)
        model = ids.get(model_id)
        if model is None:
            same = [m for m in ids.values() if m.name == model_id]
            if len(same) > 1:
                choices = ", ".join(sorted(k for k, m in ids.items() if m.name == model_id))
                raise OpenAIError(400, f"model '{model_id}' is ambiguous; use one of: {choices}", param="model")
            raise model_not_found(model_id)
        return base_target(model_id, model, projects), model.id
    job = session.get(Job, fine_tune.job_id)
    if job is None or job.project_id not in projects or projects[job.project_id].slug != fine_tune.project:
        raise model_not_found(model_id)
    if base_name(session, job) != fine_tune.base:
        raise model_not_found(model_id)
    if fine_tune.step is None and job.status != JobStatus.SUCCEEDED:
        what = "export" if job.kind == JobKind.EXPORT else "fine-tuning"
        raise OpenAIError(
            404,
            f"The model '{model_id}' is not ready: its {what} job is {job.status.value}.",
            param="model",
            code="model_not_ready",
        )
    for target in job_targets(session, settings, job, projects[job.project_id]):
        if target.model_id == model_id:
            return target, job.base_model_id
    raise model_not_found(model_id)
