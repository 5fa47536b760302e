"""Datasets that live elsewhere: Hugging Face / ModelScope / Modelers hubs and cloud storage.

Online, they are downloaded into a cache. Offline, loading fails at once (no retry loop) with a message
that names the dataset and says how to use a local copy instead.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tunery.engine.data.api import DataError, HubTokens

if TYPE_CHECKING:
    from tunery.engine.data.registry import DatasetAttr
    from tunery.spec.model import ModelSection

HUB_NAMES = {"hf_hub": "the Hugging Face Hub", "ms_hub": "the ModelScope Hub", "om_hub": "the Modelers Hub"}
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _offline_env() -> bool:
    return any(os.getenv(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def unreachable(url: str) -> str | None:
    """Why ``url``'s host cannot be reached (None when it can, or when a proxy decides)."""
    if any(os.getenv(name) for name in PROXY_VARS):
        return None
    parsed = urlparse(url)
    host = parsed.hostname or url
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        return f"no connection to {host} ({exc.strerror or exc})"
    return None


def _local_copy_hint(attr: DatasetAttr) -> str:
    return (
        f"Download it where you have internet and put the file(s) next to dataset_info.json, then set "
        f"\"file_name\" of '{attr.name}' in dataset_info.json to that file or folder "
        f"(an entry with a hub url ignores file_name, so remove the hub url)"
    )


def hub_error(attr: DatasetAttr, reason: str) -> DataError:
    where = HUB_NAMES.get(attr.load_from, attr.load_from)
    return DataError(
        f"dataset '{attr.name}' comes from {where} ({attr.dataset_name}) and cannot be loaded: {reason}. "
        + _local_copy_hint(attr)
    )


def hub_tokens(model: ModelSection) -> HubTokens:
    """The spec's access tokens by hub (``load_from`` of dataset_info.json)."""
    return {"hf_hub": model.hf_hub_token, "ms_hub": model.ms_hub_token, "om_hub": model.om_hub_token}


def load_hub_dataset(attr: DatasetAttr, cache_dir: str | None, streaming: bool, tokens: HubTokens | None = None) -> Any:
    """A ``datasets`` Dataset (or IterableDataset when streaming) of a hub dataset's split; ``tokens`` are the
    hubs' access tokens (private or gated datasets), passed as LLaMA-Factory passes them."""
    token = (tokens or {}).get(attr.load_from)
    if attr.load_from == "hf_hub":
        if not _offline_env():
            endpoint = os.getenv("HF_ENDPOINT", "https://huggingface.co")
            reason = unreachable(endpoint)
            if reason:
                raise hub_error(attr, reason + "; set HF_HUB_OFFLINE=1 to use a copy in the local cache")
        datasets = importlib.import_module("datasets")

        try:
            return datasets.load_dataset(
                attr.dataset_name,
                name=attr.subset,
                data_dir=attr.folder,
                split=attr.split,
                cache_dir=cache_dir,
                revision=attr.revision,
                streaming=streaming,
                token=token,
            )
        except Exception as exc:
            raise hub_error(attr, f"{type(exc).__name__}: {exc}") from exc
    if attr.load_from == "ms_hub":
        try:
            MsDataset = importlib.import_module("modelscope").MsDataset
        except ImportError as exc:
            raise hub_error(attr, "the modelscope package is not installed") from exc
        try:
            loaded = MsDataset.load(
                dataset_name=attr.dataset_name,
                subset_name=attr.subset,
                data_dir=attr.folder,
                split=attr.split,
                cache_dir=cache_dir,
                token=token,
                use_streaming=streaming,
            )
            return loaded.to_hf_dataset() if isinstance(loaded, MsDataset) else loaded
        except Exception as exc:
            raise hub_error(attr, f"{type(exc).__name__}: {exc}") from exc
    try:
        OmDataset = importlib.import_module("openmind").OmDataset
    except ImportError as exc:
        raise hub_error(attr, "the openmind package is not installed") from exc
    try:
        return OmDataset.load_dataset(
            path=attr.dataset_name,
            name=attr.subset,
            data_dir=attr.folder,
            split=attr.split,
            cache_dir=cache_dir,
            token=token,
            streaming=streaming,
        )
    except Exception as exc:
        raise hub_error(attr, f"{type(exc).__name__}: {exc}") from exc


def download_dataset_info(repo_id: str) -> str:
    """dataset_dir 'REMOTE:<repo>': dataset_info.json of a hub dataset repository."""
    reason = None if _offline_env() else unreachable(os.getenv("HF_ENDPOINT", "https://huggingface.co"))
    hint = "download the repository and set dataset_dir to its local folder"
    if reason:
        raise DataError(f"dataset_dir 'REMOTE:{repo_id}': dataset_info.json cannot be downloaded: {reason}; {hint}")
    from huggingface_hub import hf_hub_download

    try:
        return str(hf_hub_download(repo_id=repo_id, filename="dataset_info.json", repo_type="dataset"))
    except Exception as exc:
        raise DataError(
            f"dataset_dir 'REMOTE:{repo_id}': dataset_info.json cannot be downloaded: {exc}; {hint}"
        ) from exc


def download_cloud_file(attr: DatasetAttr, cache_dir: str | None) -> str:
    """cloud_file_name (s3://, gs://, ...): a local copy in the cache."""
    url = attr.dataset_name
    root = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "tunery", "datasets")
    target = os.path.join(root, "cloud", hashlib.sha256(url.encode()).hexdigest()[:16], os.path.basename(url))
    if os.path.isfile(target):
        return target
    try:
        fsspec = importlib.import_module("fsspec")
        fs, path = fsspec.core.url_to_fs(url)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fs.get(path, target + ".part")
        os.replace(target + ".part", target)
    except ImportError as exc:
        raise DataError(
            f"dataset '{attr.name}' is a cloud file ({url}) and its storage package is missing ({exc.name}). "
            + _local_copy_hint(attr)
        ) from exc
    except Exception as exc:
        raise DataError(
            f"dataset '{attr.name}' is a cloud file ({url}) and cannot be downloaded: {exc}. " + _local_copy_hint(attr)
        ) from exc
    return target
