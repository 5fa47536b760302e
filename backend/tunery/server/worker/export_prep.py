"""Before an export attempt: an empty output folder (every attempt starts over, so nothing a killed attempt
left is ever taken for done), the model card's context file next to the job file, and the hub token.

The token is the value of the project secret the job names; it goes into the engine's environment under
the spec's ``export_hub_token_env`` only (never into the spec, the job file, events or logs: the relays
redact it should the engine print it).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from tunery.server.db.models import Job, JobKind
from tunery.server.services.secrets import SecretUnreadable, secret_value
from tunery.server.worker.card_context import card_context
from tunery.server.worker.claim import Claim
from tunery.server.worker.context import WorkerContext
from tunery.server.worker.jobfile import JobFiles

CARD_CONTEXT = "card-context.json"


class PrepareError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class EngineExtras:
    """What an attempt's engine gets besides the job file."""

    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: values never stored: replaced in log lines and events before they are relayed
    hidden: tuple[str, ...] = ()
    #: an export's lineage, kept with each artifact it registers
    lineage: dict[str, Any] = field(default_factory=dict)


def prepare_engine(context: WorkerContext, claim: Claim, files: JobFiles) -> EngineExtras:
    """Nothing for training and eval jobs; for an export, see the module's docstring. PrepareError when the
    named secret is gone or unreadable."""
    if claim.kind != JobKind.EXPORT:
        return EngineExtras()
    shutil.rmtree(files.output_dir, ignore_errors=True)
    files.output_dir.mkdir(parents=True)
    with context.database.session() as session:
        job = session.get(Job, claim.job_id)
        if job is None:
            raise PrepareError("job_gone", "the job row is gone")
        record = dict(job.export or {})
        card = card_context(session, job)
        name = record.get("hub_token_secret")
        token = None
        if name:
            try:
                token = secret_value(session, context.settings, job.project_id, str(name))
            except SecretUnreadable as exc:
                raise PrepareError("missing_secret", exc.detail) from exc
            if token is None:
                raise PrepareError(
                    "missing_secret", f"the project secret '{name}' (the hub token) was deleted; set it again"
                )
    path = files.folder / CARD_CONTEXT
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
    os.replace(partial, path)
    env_name = str(claim.spec.get("export", {}).get("export_hub_token_env") or "HF_TOKEN")
    return EngineExtras(
        args=("--card-context", str(path)),
        env={env_name: token} if token else {},
        hidden=(token,) if token else (),
        lineage=dict(record.get("lineage") or {}),
    )
