"""The training stages jobs can use: the dashboard builds its new-run form from this list."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from tunery.server.api.schemas.stages import StagePublic
from tunery.spec.stages import STAGE_CATALOG

router = APIRouter(tags=["stages"])

#: built once: the catalog is static, the same for every caller, nothing in it is private to a project
_CATALOG = [StagePublic.model_validate(asdict(info)) for info in STAGE_CATALOG]


@router.get("/api/stages")
async def list_stages() -> list[StagePublic]:
    """Every training stage with its data shape, its own spec keys and the metrics it reports."""
    return _CATALOG
