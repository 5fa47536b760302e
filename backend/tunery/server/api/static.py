"""Serving the built dashboard (``frontend/dist``) from the API at ``/``, so one URL serves both.

``mount_dashboard(app, dist_dir)`` adds a catch-all GET route; call it after every API router is included
(routes match in order). Files under ``dist_dir`` are served as they are; any other path that is not under
``/api``, ``/v1`` or ``/ws`` gets ``index.html`` (the dashboard routes in the browser). Hashed files under
``assets/`` are cached for a year, ``index.html`` never. Until the dashboard is built, ``/`` answers 404 saying
how to build it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

#: path prefixes that belong to the API: unknown paths there stay 404s (JSON), never the dashboard
API_PREFIXES = ("api", "v1", "ws")
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = "The dashboard is not built: run `npm ci && npm run build` in frontend/ and restart the server.\n"


def _inside(root: Path, path: str) -> Path | None:
    """The file ``path`` names inside ``root``, or None (missing, a folder, or outside ``root``)."""
    if not path or "\0" in path:
        return None
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def mount_dashboard(app: FastAPI, dist_dir: str | Path) -> None:
    """Serve ``dist_dir`` at ``/`` with a fallback to its ``index.html`` for the dashboard's own paths."""
    root = Path(dist_dir).resolve()

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def dashboard(path: str) -> Response:
        first = path.split("/", 1)[0]
        if first in API_PREFIXES:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        found = _inside(root, path)
        if found is not None:
            cache = IMMUTABLE if path.startswith("assets/") else "no-cache"
            return FileResponse(found, headers={"Cache-Control": cache})
        index = root / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=404)
        return FileResponse(index, headers={"Cache-Control": "no-cache"}, media_type="text/html")
