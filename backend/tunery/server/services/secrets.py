"""Project secrets: values encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256), its key derived from the
server's secret key; the API only ever returns names. Workers read a value for the job that names it and hand
it to the engine's environment (worker/export_prep.py)."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.config import Settings
from tunery.server.db.base import utcnow
from tunery.server.db.models import ProjectSecret
from tunery.server.errors import ConflictError, NotFoundError

#: HKDF context: keys derived from the secret key for other purposes never equal this one
KEY_INFO = b"tunery project secrets v1"


class SecretUnreadable(ConflictError):
    """The stored value was encrypted under another secret key (the server's key changed)."""


def fernet(settings: Settings) -> Fernet:
    secret = settings.secret_key.get_secret_value().encode("utf-8")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(settings: Settings, value: str) -> str:
    return fernet(settings).encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(settings: Settings, token: str, name: str = "secret") -> str:
    try:
        return fernet(settings).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise SecretUnreadable(
            f"project secret '{name}' cannot be decrypted: the server's secret key changed since it was set; "
            "set it again (PUT /api/projects/{id}/secrets/{name})"
        ) from exc


def list_secrets(session: Session, project_id: str) -> Sequence[ProjectSecret]:
    return session.scalars(
        select(ProjectSecret).where(ProjectSecret.project_id == project_id).order_by(ProjectSecret.name)
    ).all()


def find_secret(session: Session, project_id: str, name: str) -> ProjectSecret | None:
    return session.scalar(
        select(ProjectSecret).where(ProjectSecret.project_id == project_id, ProjectSecret.name == name)
    )


def put_secret(session: Session, settings: Settings, project_id: str, name: str, value: str) -> ProjectSecret:
    """Create or replace the secret (not committed)."""
    row = find_secret(session, project_id, name)
    if row is None:
        row = ProjectSecret(project_id=project_id, name=name, value_encrypted=encrypt(settings, value))
        session.add(row)
    else:
        row.value_encrypted = encrypt(settings, value)
        row.updated_at = utcnow()
    session.flush()
    return row


def delete_secret(session: Session, project_id: str, name: str) -> None:
    row = find_secret(session, project_id, name)
    if row is None:
        raise NotFoundError(f"no secret '{name}' in this project")
    session.delete(row)


def secret_value(session: Session, settings: Settings, project_id: str, name: str) -> str | None:
    """The plaintext value, or None when the project has no such secret (any more)."""
    row = find_secret(session, project_id, name)
    return None if row is None else decrypt(settings, row.value_encrypted, name)
