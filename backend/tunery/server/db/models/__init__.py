"""All ORM models (importing this registers them on Base.metadata)."""

from tunery.server.db.models.catalog import Dataset, DatasetVersion, RegisteredModel
from tunery.server.db.models.identity import ApiKey, Membership, Project, Role, User
from tunery.server.db.models.jobs import (
    Artifact,
    Checkpoint,
    EvalResult,
    Experiment,
    Job,
    JobDatasetVersion,
    JobEvent,
    JobKind,
    JobStatus,
    LogLine,
    Metric,
)
from tunery.server.db.models.secrets import ProjectSecret
from tunery.server.db.models.workers import Gpu, IdempotencyKey, Worker

__all__ = [
    "ApiKey",
    "Artifact",
    "Checkpoint",
    "Dataset",
    "DatasetVersion",
    "EvalResult",
    "Experiment",
    "Gpu",
    "IdempotencyKey",
    "Job",
    "JobDatasetVersion",
    "JobEvent",
    "JobKind",
    "JobStatus",
    "LogLine",
    "Membership",
    "Metric",
    "Project",
    "ProjectSecret",
    "RegisteredModel",
    "Role",
    "User",
    "Worker",
]
