"""The routers of model serving and the OpenAI-compatible API, for ``create_app`` to include:
``/v1`` (models, chat/completions, completions, score, files, fine-tuning) and ``/api/deployments``."""

from __future__ import annotations

from fastapi import APIRouter

from tunery.server.api.routes import deployments, openai_files, openai_fine_tuning, openai_inference

OPENAI_ROUTERS: list[APIRouter] = [
    openai_inference.router,
    openai_files.router,
    openai_fine_tuning.router,
    deployments.router,
]
