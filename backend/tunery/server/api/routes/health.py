"""Liveness (the process answers) and readiness (database, migrations, broker)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tunery.server.api.deps import DatabaseDep, SettingsDep
from tunery.server.services.readiness import readiness

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "a dependency is not ready"}})
async def ready(settings: SettingsDep, database: DatabaseDep) -> JSONResponse:
    checks = await run_in_threadpool(readiness, settings, database)
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)
