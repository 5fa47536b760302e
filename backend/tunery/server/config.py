"""Service settings, read from ``TUNERY_*`` environment variables. Secrets never appear in repr or logs."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

MiB = 1024 * 1024


def default_dashboard_dir() -> Path:
    """``frontend/dist`` next to ``backend/`` (where ``make up`` builds it for an editable install)."""
    return Path(__file__).resolve().parents[3] / "frontend" / "dist"


class Settings(BaseModel):
    """Everything the API, workers and CLI need to find the database, broker and files.

    ``database_url``, ``broker_url`` and ``redis_url`` may hold passwords: they are excluded from repr.
    """

    model_config = ConfigDict(frozen=True)

    home: Path
    database_url: str = Field(repr=False)
    broker_url: str = Field(repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    storage_root: Path
    secret_key: SecretStr
    upload_limit_bytes: int = Field(default=1024 * MiB, gt=0)
    token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    lease_seconds: int = Field(default=60, gt=0)
    max_attempts: int = Field(default=3, gt=0)
    preview_timeout_seconds: int = Field(default=300, gt=0)
    #: folders whose models the API may inspect (config.json); other paths are stored as given
    model_dirs: tuple[Path, ...] = ()
    migrate_on_start: bool = True
    #: benchmark sets dropped in by an admin (TUNERY_BENCHMARK_DIR; LLaMA-Factory's evaluation/ layout), besides
    #: the small sample sets shipped with Tunery
    benchmark_dir: Path | None = None
    #: the built dashboard served at / (TUNERY_DASHBOARD_DIR; default: frontend/dist of this checkout)
    dashboard_dir: Path = Field(default_factory=default_dashboard_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); creates TUNERY_HOME and, if needed, a secret key."""
        env = os.environ if env is None else env
        home = Path(env.get("TUNERY_HOME", ".tunery")).expanduser().absolute()
        home.mkdir(parents=True, exist_ok=True)
        storage = Path(env.get("TUNERY_STORAGE_ROOT", str(home / "storage"))).expanduser().absolute()
        model_dirs = tuple(Path(p).expanduser().absolute() for p in env.get("TUNERY_MODEL_DIRS", "").split(":") if p)
        values: dict[str, object] = {
            "home": home,
            "database_url": env.get("TUNERY_DATABASE_URL") or f"sqlite:///{home / 'tunery.db'}",
            "broker_url": env.get("TUNERY_BROKER_URL") or f"sqla+sqlite:///{home / 'broker.db'}",
            "redis_url": env.get("TUNERY_REDIS_URL") or None,
            "storage_root": storage,
            "secret_key": SecretStr(env.get("TUNERY_SECRET_KEY") or _stored_secret(home)),
            "model_dirs": model_dirs or (home / "models",),
        }
        for key, name in _NUMBERS.items():
            if env.get(name):
                values[key] = int(env[name])
        if env.get("TUNERY_DASHBOARD_DIR"):
            values["dashboard_dir"] = Path(env["TUNERY_DASHBOARD_DIR"]).expanduser().absolute()
        if env.get("TUNERY_BENCHMARK_DIR"):
            values["benchmark_dir"] = Path(env["TUNERY_BENCHMARK_DIR"]).expanduser().absolute()
        if env.get("TUNERY_MIGRATE_ON_START"):
            values["migrate_on_start"] = env["TUNERY_MIGRATE_ON_START"].lower() in ("1", "true", "yes")
        return cls.model_validate(values)


_NUMBERS = {
    "upload_limit_bytes": "TUNERY_UPLOAD_LIMIT_BYTES",
    "token_ttl_seconds": "TUNERY_TOKEN_TTL_SECONDS",
    "lease_seconds": "TUNERY_LEASE_SECONDS",
    "max_attempts": "TUNERY_MAX_ATTEMPTS",
    "preview_timeout_seconds": "TUNERY_PREVIEW_TIMEOUT_SECONDS",
}


def _stored_secret(home: Path) -> str:
    """A random secret kept in ``$TUNERY_HOME/secret_key`` (mode 0600), so tokens survive restarts."""
    path = home / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value
