"""Run the API with the built dashboard mounted (until create_app mounts it itself).

Usage: TUNERY_HOME=... python frontend/e2e/serve.py [--host 127.0.0.1] [--port 8000]
Serves frontend/dist at / through ``tunery.server.api.static.mount_dashboard``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from tunery.server.api.app import create_app
from tunery.server.api.static import mount_dashboard

DIST = Path(__file__).resolve().parent.parent / "dist"


def app() -> FastAPI:
    application: FastAPI = create_app()
    if not any(getattr(route, "name", "") == "dashboard" for route in application.routes):
        mount_dashboard(application, DIST)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, factory=True, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
