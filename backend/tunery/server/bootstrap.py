"""First start (``tunery up``, after migrations): an admin, a default project, the demo datasets.

Runs only while the database has no user, so a later start creates nothing. The admin's password comes from
TUNERY_ADMIN_PASSWORD or is generated; a generated one is written once to ``$TUNERY_HOME/initial_admin_password``
(mode 0600) and handed back for ``tunery up`` to print once; it is never logged. TUNERY_DEMO=0 skips the demo
data and model. The demo model is converted afterwards, out of process (``tunery.server.demo_model_setup``):
first start leaves a marker file that that step removes once the model is registered.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tunery.demo import DEMO_DATA_DIR
from tunery.server.config import Settings
from tunery.server.db.models import User
from tunery.server.db.session import Database
from tunery.server.services.dataset_local import add_local_version
from tunery.server.services.datasets import create_dataset
from tunery.server.services.projects import create_project
from tunery.server.services.users import create_user
from tunery.server.storage import Storage

log = logging.getLogger(__name__)

DEFAULT_ADMIN_EMAIL = "admin@tunery.local"
PASSWORD_FILE = "initial_admin_password"
DEMO_MODEL_MARKER = "demo_model.pending"
DEFAULT_PROJECT = "Default"
#: demo dataset (its dataset_info.json name) -> the stage its rows are checked for
DEMO_DATASETS = {"tunery_identity": "sft", "tunery_identity_dpo": "dpo"}
DEMO_DESCRIPTIONS = {
    "tunery_identity": "Demo: who the assistant is (SFT, alpaca format)",
    "tunery_identity_dpo": "Demo: preferred vs rejected answers (DPO, sharegpt format)",
}


@dataclass
class Bootstrapped:
    """What a start did. ``password`` is set only when it was generated now (to be shown once)."""

    created: bool
    admin_email: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    project_id: str | None = None
    datasets: list[str] = field(default_factory=list)


def demo_enabled(env: Mapping[str, str]) -> bool:
    return env.get("TUNERY_DEMO", "1").strip().lower() not in ("0", "false", "no", "off")


def password_file(settings: Settings) -> Path:
    return settings.home / PASSWORD_FILE


def demo_model_marker(settings: Settings) -> Path:
    return settings.home / DEMO_MODEL_MARKER


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only the owner can read (replacing an old one)."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(partial, path)


def bootstrap(settings: Settings, database: Database, env: Mapping[str, str] | None = None) -> Bootstrapped:
    """On an empty database: the admin, the Default project and (unless TUNERY_DEMO=0) the demo data."""
    env = os.environ if env is None else env
    email = env.get("TUNERY_ADMIN_EMAIL") or DEFAULT_ADMIN_EMAIL
    given = env.get("TUNERY_ADMIN_PASSWORD") or None
    password = given or secrets.token_urlsafe(18)
    with database.session() as session:
        if session.scalar(select(User.id).limit(1)) is not None:
            first_admin = select(User.email).where(User.is_admin.is_(True)).order_by(User.created_at).limit(1)
            return Bootstrapped(created=False, admin_email=session.scalar(first_admin))
        try:
            admin = create_user(session, email, password, admin=True)
        except ValueError as exc:  # a weak TUNERY_ADMIN_PASSWORD
            raise SystemExit(f"TUNERY_ADMIN_PASSWORD refused: {exc}") from exc
        project = create_project(session, admin, DEFAULT_PROJECT)
        result = Bootstrapped(created=True, admin_email=admin.email, project_id=project.id)
        if given is None:
            result.password, result.password_file = password, password_file(settings)
            _write_private(result.password_file, password)  # before the commit: never an unknown password
        try:
            session.commit()
        except IntegrityError:  # another process bootstrapped at the same moment
            session.rollback()
            return Bootstrapped(created=False)
    log.info("first start: created admin %s and project %s", result.admin_email, DEFAULT_PROJECT)
    if demo_enabled(env):
        result.datasets = add_demo_datasets(settings, database, project.id)
        demo_model_marker(settings).touch()
    return result


def login_hint(result: Bootstrapped, settings: Settings) -> str | None:
    """What ``tunery up`` prints about the admin login (the generated password only on the start that made it)."""
    if result.password is not None:
        return (
            f"Admin login: {result.admin_email}  password: {result.password}\n"
            f"  (shown only now; also saved in {result.password_file}, readable only by you)"
        )
    if result.created:
        return f"Admin login: {result.admin_email} with the password from TUNERY_ADMIN_PASSWORD"
    stored = password_file(settings)
    if stored.exists():
        return f"Admin login: {result.admin_email or DEFAULT_ADMIN_EMAIL}; first-start password in {stored}"
    return None


def add_demo_datasets(settings: Settings, database: Database, project_id: str) -> list[str]:
    """The shipped demo datasets as datasets of the project (one validated version each); their names.

    Best effort: one that cannot be stored is logged and skipped (the service works without it)."""
    info = json.loads((DEMO_DATA_DIR / "dataset_info.json").read_text(encoding="utf-8"))
    storage = Storage(settings.storage_root)
    storage.ensure()
    added = []
    for name, stage in DEMO_DATASETS.items():
        try:
            with database.session() as session:
                dataset = create_dataset(session, project_id, name, DEMO_DESCRIPTIONS[name])
                version = add_local_version(session, storage, dataset, DEMO_DATA_DIR, dict(info[name]), stage)
                if version.status != "valid":
                    log.warning("demo dataset %s: validation found problems: %s", name, version.report.get("error"))
            added.append(name)
        except Exception:
            log.warning("demo dataset %s could not be added", name, exc_info=True)
    return added
