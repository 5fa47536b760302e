"""Pushing an export to the Hugging Face Hub (``huggingface_hub``) or ModelScope (``modelscope``), last.

Everything that can make the push fail is checked before any work (:func:`preflight`): the package, the token
(the environment variable ``export_hub_token_env`` names; the worker sets it from a project secret and it
never appears in the spec, events or logs), offline mode (``HF_HUB_OFFLINE=1``) and whether the hub's
endpoint answers at all (a short connection attempt)."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from tunery.engine.train.errors import TrainingError, invalid_spec
from tunery.spec.export import ExportSection

#: seconds the reachability check waits for the hub's endpoint
REACH_TIMEOUT = 5.0
#: never uploaded: temporary files of the export itself and its results file
IGNORED: tuple[str, ...] = (".merged-tmp/**", ".tmp-*", ".tmp-*/**", "*.partial", "*.partial/**", "export_results.json")
MODELSCOPE_DEFAULT_DOMAIN = "www.modelscope.cn"


def hub_title(export: ExportSection) -> str:
    return "ModelScope" if export.export_hub == "modelscope" else "the Hugging Face Hub"


def modelscope_endpoint() -> str:
    domain = os.environ.get("MODELSCOPE_DOMAIN") or MODELSCOPE_DEFAULT_DOMAIN
    return domain if "://" in domain else f"https://{domain}"


def endpoint(export: ExportSection) -> str:
    if export.export_hub == "modelscope":
        return modelscope_endpoint()
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_token(export: ExportSection) -> str:
    token = os.environ.get(export.export_hub_token_env, "").strip()
    if not token:
        raise invalid_spec(
            "export_hub_token_env",
            f"the environment variable {export.export_hub_token_env} holds no token: pushing "
            f"{export.export_hub_model_id} to {hub_title(export)} needs one (a project secret in the app)",
        )
    return token


def _offline(export: ExportSection) -> bool:
    if export.export_hub == "modelscope":
        return False
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def check_reachable(url: str, timeout: float = REACH_TIMEOUT) -> str | None:
    """None when ``url`` answers an HTTP request (any status), else why not."""
    import httpx

    try:
        httpx.head(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def preflight(export: ExportSection) -> None:
    """Fail now, before any export work, when the push at the end could not happen."""
    if not export.export_hub_model_id:
        return
    where = hub_title(export)
    if export.export_hub == "modelscope" and importlib.util.find_spec("modelscope") is None:
        raise invalid_spec(
            "export_hub", "modelscope is not installed here; pip install modelscope, or push to huggingface"
        )
    hub_token(export)
    if _offline(export):
        raise invalid_spec(
            "export_hub_model_id",
            f"cannot push to {where}: this machine is offline (HF_HUB_OFFLINE is set); remove export_hub_model_id "
            "or run the export where the hub can be reached",
        )
    url = endpoint(export)
    problem = check_reachable(url)
    if problem is not None:
        raise invalid_spec(
            "export_hub_model_id",
            f"cannot push to {where}: {url} cannot be reached ({problem}); remove export_hub_model_id or run the "
            "export where the hub can be reached",
        )


def push(export: ExportSection, folder: Path) -> str:
    """Upload ``folder`` (the export) to ``export_hub_model_id``; returns the repository's URL."""
    repo_id = export.export_hub_model_id
    assert repo_id, "push needs export_hub_model_id"
    token = hub_token(export)
    try:
        if export.export_hub == "modelscope":
            return _push_modelscope(repo_id, folder, token, export.export_hub_private)
        return _push_huggingface(repo_id, folder, token, export.export_hub_private)
    except TrainingError:
        raise
    except Exception as exc:  # the hub clients raise their own HTTP errors; name the step and the repository
        message = str(exc).replace(token, "***")
        raise TrainingError("internal", f"push to {hub_title(export)} ({repo_id}) failed: {message}") from exc


def _push_huggingface(repo_id: str, folder: Path, token: str, private: bool) -> str:
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message="Upload model exported by Tunery",
        ignore_patterns=list(IGNORED),
    )
    return str(repo)


def _push_modelscope(repo_id: str, folder: Path, token: str, private: bool) -> str:
    hub_api = importlib.import_module("modelscope.hub.api")  # optional: checked by preflight
    api: Any = hub_api.HubApi(token=token)
    api.create_repo(repo_id, visibility="private" if private else "public", exist_ok=True, repo_type="model")
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message="Upload model exported by Tunery",
        ignore_patterns=list(IGNORED),
    )
    return f"{modelscope_endpoint()}/models/{repo_id}"
