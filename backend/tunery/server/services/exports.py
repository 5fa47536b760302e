"""Export jobs from an ``ExportCreate``: the spec is built here from served model ids (resolved like /v1
does), validated by JobSpec, and queued as a job of kind ``export`` writing into the job's output folder.

What was asked for (model ids, the source job and checkpoint, the hub token's secret name) is kept in the
job's ``export`` column for lineage, the model card and the worker; the token itself never is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tunery.server.api.schemas.exports import ExportCreate
from tunery.server.auth.principal import Principal
from tunery.server.config import Settings
from tunery.server.db.base import utcnow
from tunery.server.db.models import Dataset, DatasetVersion, Job, JobKind
from tunery.server.services import jobs, secrets
from tunery.server.services.job_inputs import JobInputError, Problem
from tunery.server.services.served_models import parse_fine_tune_id, resolve_with_base
from tunery.serving.errors import OpenAIError
from tunery.serving.types import ServeTarget
from tunery.spec import JobSpec, SpecError
from tunery.spec.export_formats import EXPORT_FORMATS_BY_NAME

#: spec keys -> the request field they come from (spec problems are reported under the request's names)
REQUEST_FIELDS: dict[str, str] = {
    "model_name_or_path": "model",
    "adapter_name_or_path": "extra_adapters",
    "template": "model",
    "infer_dtype": "dtype",
    "export_formats": "formats",
    "export_gguf_types": "gguf_types",
    "export_size": "export_size",
    "export_legacy_format": "legacy_format",
    "export_ollama": "ollama",
    "export_verify": "verify",
    "export_quantization_bit": "gptq_bits",
    "export_quantization_dataset": "gptq_dataset_version_id",
    "export_hub_model_id": "hub_model_id",
    "export_hub": "hub",
    "export_hub_private": "hub_private",
}
GPTQ_BITS = (2, 3, 4, 8)
#: the environment variable each hub's client reads its token from (the worker sets it from the secret)
HUB_TOKEN_ENV = {"huggingface": "HF_TOKEN", "modelscope": "MODELSCOPE_API_TOKEN"}


@dataclass
class _Resolved:
    target: ServeTarget | None = None
    base_model_id: str | None = None
    adapters: list[str] = field(default_factory=list)  # adapter folders merged, in order
    calibration: DatasetVersion | None = None
    problems: list[Problem] = field(default_factory=list)


def create_export(
    session: Session, settings: Settings, principal: Principal, project_id: str, body: ExportCreate
) -> jobs.Outcome:
    """Check the request, build and validate the spec, write the job (not committed); JobInputError naming
    the request's fields when anything is wrong (nothing is written then)."""
    new = jobs.NewJob(project_id, {}, None, body.name, None, principal.user_id)
    found = _Resolved(problems=_applicability(body))
    _resolve_models(session, principal, settings, body, found)
    if "gptq" in body.formats:
        found.problems += _gptq_problems(session, settings, project_id, body, found)
    if body.hub_token_secret and secrets.find_secret(session, project_id, body.hub_token_secret) is None:
        found.problems.append(
            Problem("hub_token_secret", f"the project has no secret '{body.hub_token_secret}' (PUT .../secrets/NAME)")
        )
    if found.problems:
        raise JobInputError(found.problems)
    assert found.target is not None
    spec = _parse(_build_spec(settings, body, found))
    new.gpus = 1 if any(EXPORT_FORMATS_BY_NAME[name].needs_gpu for name in body.formats) else 0
    outcome = jobs.insert_job(session, settings, new, spec, {}, found.base_model_id, JobKind.EXPORT)
    outcome.job.export = _request_record(session, body, found)
    return outcome


def _applicability(body: ExportCreate) -> list[Problem]:
    """Fields that do not apply to the chosen formats (refused rather than ignored), and missing ones."""
    problems = []
    if len(set(body.formats)) != len(body.formats):
        problems.append(Problem("formats", "lists a format twice"))
    if body.gguf_types is not None and "gguf" not in body.formats:
        problems.append(Problem("gguf_types", "applies to the gguf format only; add gguf to formats"))
    if body.gguf_types is not None and not body.gguf_types:
        problems.append(Problem("gguf_types", "is empty; name one or more GGUF types (see the catalog)"))
    if "gptq" not in body.formats:
        for name in ("gptq_bits", "gptq_dataset_version_id"):
            if getattr(body, name) is not None:
                problems.append(Problem(name, "applies to the gptq format only; add gptq to formats"))
    if body.hub_token_secret and not body.hub_model_id:
        problems.append(Problem("hub_token_secret", "applies to a hub push only; set hub_model_id"))
    if body.hub_model_id and not body.hub_token_secret:
        problems.append(
            Problem("hub_token_secret", "is required to push: name the project secret that holds the hub token")
        )
    if len(set(body.extra_adapters)) != len(body.extra_adapters) or body.model in body.extra_adapters:
        problems.append(Problem("extra_adapters", "lists an adapter twice"))
    return problems


def _resolve(
    session: Session, principal: Principal, settings: Settings, model_id: str, where: str
) -> tuple[ServeTarget, str | None] | Problem:
    try:
        target, base_model_id = resolve_with_base(session, principal, settings, model_id)
    except OpenAIError as exc:
        return Problem(where, exc.message)
    if target.reward:
        return Problem(where, f"'{model_id}' is a reward model (a scoring head); export a generative model")
    if target.engine == "gguf":
        return Problem(where, f"'{model_id}' is a GGUF file; export the merged model it was written from")
    return target, base_model_id


def _resolve_models(
    session: Session, principal: Principal, settings: Settings, body: ExportCreate, found: _Resolved
) -> None:
    resolved = _resolve(session, principal, settings, body.model, "model")
    if isinstance(resolved, Problem):
        found.problems.append(resolved)
        return
    found.target, found.base_model_id = resolved
    if found.target.adapter_path is not None:
        found.adapters.append(found.target.adapter_path)
    for model_id in body.extra_adapters:
        extra = _resolve(session, principal, settings, model_id, "extra_adapters")
        if isinstance(extra, Problem):
            found.problems.append(extra)
        elif extra[0].adapter_path is None:
            found.problems.append(
                Problem("extra_adapters", f"'{model_id}' is not a LoRA fine-tune (no adapter to merge)")
            )
        elif extra[0].base_path != found.target.base_path:
            found.problems.append(
                Problem(
                    "extra_adapters",
                    f"'{model_id}' was trained on another base ({Path(extra[0].base_path).name}, not "
                    f"{Path(found.target.base_path).name}); adapters merge onto the base they were trained on",
                )
            )
        else:
            found.adapters.append(extra[0].adapter_path)


def _gptq_problems(
    session: Session, settings: Settings, project_id: str, body: ExportCreate, found: _Resolved
) -> list[Problem]:
    from tunery.server.worker.claim import gpu_worker_online
    from tunery.server.worker.context import WorkerOptions

    problems = []
    if body.gptq_bits is None or body.gptq_bits not in GPTQ_BITS:
        bits = ", ".join(map(str, GPTQ_BITS))
        problems.append(Problem("gptq_bits", f"is required for gptq (export_quantization_bit): one of {bits}"))
    online_since = utcnow() - WorkerOptions.from_settings(settings, {}).silence_limit
    if not gpu_worker_online(session, online_since):
        problems.append(
            Problem(
                "formats",
                "gptq (export_quantization_bit) quantizes on a CUDA GPU and no GPU worker is online; start a worker "
                "on a GPU machine, or export hf/gguf instead",
            )
        )
    if body.gptq_dataset_version_id is None:
        problems.append(
            Problem("gptq_dataset_version_id", "is required for gptq: a dataset version of calibration texts")
        )
        return problems
    version = session.get(DatasetVersion, body.gptq_dataset_version_id)
    dataset = session.get(Dataset, version.dataset_id) if version is not None else None
    if version is None or dataset is None or dataset.project_id != project_id:
        problems.append(Problem("gptq_dataset_version_id", "no such dataset version in this project"))
    elif not isinstance(version.info.get("file_name"), str):
        problems.append(Problem("gptq_dataset_version_id", "the dataset version has no single data file"))
    else:
        found.calibration = version
    return problems


def _build_spec(settings: Settings, body: ExportCreate, found: _Resolved) -> dict[str, Any]:
    target = found.target
    assert target is not None
    spec: dict[str, Any] = {
        "model_name_or_path": target.base_path,
        "infer_dtype": body.dtype,
        "do_train": False,
        "export_dir": "output",  # the job's output folder (jobs.insert_job places it)
        "export_formats": list(body.formats),
        "export_size": body.export_size,
        "export_legacy_format": body.legacy_format,
        "export_ollama": body.ollama,
        "export_verify": body.verify,
    }
    if found.adapters:
        spec["adapter_name_or_path"] = list(found.adapters)
    if target.template:
        spec["template"] = target.template
        if target.tool_format:
            spec["tool_format"] = target.tool_format
    if body.gguf_types is not None:
        spec["export_gguf_types"] = list(body.gguf_types)
    if found.calibration is not None:
        version = found.calibration
        spec["export_quantization_bit"] = body.gptq_bits
        spec["export_quantization_dataset"] = str(
            settings.storage_root / version.storage_path / str(version.info["file_name"])
        )
    if body.hub_model_id:
        spec |= {
            "export_hub_model_id": body.hub_model_id,
            "export_hub": body.hub,
            "export_hub_token_env": HUB_TOKEN_ENV[body.hub],
            "export_hub_private": body.hub_private,
        }
    return spec


def _parse(spec: dict[str, Any]) -> JobSpec:
    try:
        return JobSpec.from_mapping(spec, source="export")
    except SpecError as exc:
        problems = []
        for problem in exc.problems:
            key = problem.field.split(".")[0]
            name = REQUEST_FIELDS.get(key)
            problems.append(Problem(name or problem.field, problem.message if name else f"{key}: {problem.message}"))
        raise JobInputError(problems) from exc


def _request_record(session: Session, body: ExportCreate, found: _Resolved) -> dict[str, Any]:
    """The job's ``export`` column: the request, lineage, and where the hub token comes from (its name)."""
    from tunery.server.services.served_models import base_name

    source = parse_fine_tune_id(body.model)
    source_job = session.get(Job, source.job_id) if source is not None else None
    record = body.model_dump(mode="json", exclude_none=True, exclude={"name"})
    record["lineage"] = {
        "source_job_id": source_job.id if source_job is not None else None,
        "checkpoint_step": source.step if source is not None else None,
        "adapters": [body.model, *body.extra_adapters] if found.adapters else list(body.extra_adapters),
        "base_model": base_name(session, source_job) if source_job is not None else body.model,
    }
    if found.calibration is not None:
        record["gptq_dataset_version_id"] = found.calibration.id
    return record
