"""The demo model at first start: SmolLM2-135M-Instruct converted once into ``$TUNERY_HOME/models`` and
registered as a shared base model. ``tunery up`` runs ``python -m tunery.server.demo_model_setup`` in the
background (the conversion imports torch and takes about a minute); it does nothing unless the first-start
marker is there, and removes the marker once the model is registered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import select

from tunery.engine.demo_model import DEMO_MODEL_NAME, DemoModelMissing, ensure_demo_model, find_demo_gguf
from tunery.server.bootstrap import demo_model_marker
from tunery.server.config import Settings
from tunery.server.db.models import RegisteredModel
from tunery.server.db.session import Database
from tunery.server.services.base_models import facts_for, register_model

log = logging.getLogger("tunery.server.demo_model_setup")  # also when run as __main__
MODULE = "tunery.server.demo_model_setup"
LAUNCHER = "tunery.server.worker.launch"  # the child gets SIGTERM if `tunery up` dies


def demo_model_pending(settings: Settings) -> bool:
    return demo_model_marker(settings).exists()


def demo_package_problem() -> str | None:
    """Why the demo model cannot be made (its package is missing), or None; cheap, imports no torch."""
    try:
        find_demo_gguf()
    except DemoModelMissing as exc:
        return str(exc)
    return None


def warn_if_unavailable(settings: Settings) -> bool:
    """True when the demo model is still to be made and can be; else False, with a warning if it cannot."""
    if not demo_model_pending(settings):
        return False
    problem = demo_package_problem()
    if problem is None:
        return True
    log.warning(
        "the demo model %s is not registered: %s (install it and restart, or register a model with "
        "`tunery models add`; TUNERY_DEMO=0 stops this warning)",
        DEMO_MODEL_NAME,
        problem,
    )
    return False


def _registered(database: Database) -> RegisteredModel | None:
    with database.session() as session:
        query = select(RegisteredModel).where(
            RegisteredModel.name == DEMO_MODEL_NAME, RegisteredModel.project_id.is_(None)
        )
        return session.scalar(query)


def setup_demo_model(settings: Settings, database: Database) -> RegisteredModel | None:
    """Convert (once) and register the demo model if first start asked for it; the registered row, or None."""
    if not warn_if_unavailable(settings):
        return None
    existing = _registered(database)
    if existing is None:
        log.info("preparing the demo model %s (converted once from GGUF; about a minute)", DEMO_MODEL_NAME)
        folder = ensure_demo_model(settings.home / "models")
        existing = register_demo_model(database, folder)
    demo_model_marker(settings).unlink(missing_ok=True)
    return existing


def register_demo_model(database: Database, folder: Path) -> RegisteredModel:
    """Register ``folder`` as the shared demo model: its own chat template (ChatML) when it has one."""
    facts = facts_for(str(folder.resolve()), None)
    template = "auto" if facts.details.get("has_chat_template") else "chatml"
    with database.session() as session:
        model = register_model(session, None, DEMO_MODEL_NAME, str(folder.resolve()), facts, template=template)
        session.commit()
    return model


def start_in_background(settings: Settings, env: Mapping[str, str]) -> subprocess.Popen[bytes] | None:
    """Start the conversion + registration process when first start asked for it (warns when it cannot)."""
    if not warn_if_unavailable(settings):
        return None
    argv = [sys.executable, "-m", LAUNCHER, str(os.getpid()), "--", sys.executable, "-m", MODULE]
    return subprocess.Popen(argv, env=dict(env), start_new_session=True, stdin=subprocess.DEVNULL)


def stop_background(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """Stop an unfinished conversion (the next start does it again)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(5)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[tunery up] %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    database = Database.from_settings(settings)
    try:
        model = setup_demo_model(settings, database)
    finally:
        database.dispose()
    if model is not None:
        log.info("demo model ready: %s (%s, template %s)", model.name, model.path_or_hub_id, model.template)
    return 0


if __name__ == "__main__":
    sys.exit(main())
