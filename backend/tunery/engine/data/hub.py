"""Datasets that live elsewhere: Hugging Face / ModelScope / Modelers hubs and cloud storage.

Online, a hub dataset is loaded through its hub's library (``datasets``, ``modelscope``, ``openmind``), which
downloads it into that library's cache. When the hub cannot be reached (no connection, or HF_HUB_OFFLINE=1)
a copy in the local cache is used instead: for Hugging Face, the repository snapshot in the hub cache
(HF_HUB_CACHE, honouring revision, subset, data folder and split) or the prepared Arrow dataset in the
``datasets`` cache. A dataset that is in neither fails at once (no retry loop), before any other work, with a
message naming the dataset and the cache folders that were searched.
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
_TRUE = ("1", "true", "yes", "on")


def _offline_env() -> bool:
    return any(os.getenv(k, "").lower() in _TRUE for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


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


def hf_endpoint() -> str:
    return os.getenv("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _cache_home() -> str:
    xdg = os.getenv("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.expanduser(os.getenv("HF_HOME") or os.path.join(xdg, "huggingface"))


def hf_hub_cache() -> str:
    """The Hugging Face hub cache (downloaded repository files), as huggingface_hub resolves it."""
    path = os.getenv("HF_HUB_CACHE") or os.getenv("HUGGINGFACE_HUB_CACHE") or os.path.join(_cache_home(), "hub")
    return os.path.expanduser(path)


def hf_datasets_cache(cache_dir: str | None) -> str:
    """The ``datasets`` cache of prepared Arrow datasets (the spec's cache_dir, as LLaMA-Factory passes it)."""
    return os.path.expanduser(cache_dir or os.getenv("HF_DATASETS_CACHE") or os.path.join(_cache_home(), "datasets"))


def ms_cache(cache_dir: str | None) -> str:
    home = os.getenv("MODELSCOPE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "modelscope", "hub")
    return os.path.expanduser(cache_dir or os.path.join(home, "datasets"))


def om_cache(cache_dir: str | None) -> str:
    home = os.getenv("HUB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "openmind", "hub")
    return os.path.expanduser(cache_dir or home)


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


def not_cached_error(attr: DatasetAttr, reason: str, caches: list[str], detail: str = "") -> DataError:
    """The hub cannot be reached and the dataset is not in the local cache."""
    revision = f" at revision '{attr.revision}'" if attr.revision else ""
    searched = " and ".join(caches)
    more = f" ({detail})" if detail else ""
    return hub_error(
        attr,
        f"{reason}, and it is not in the local cache{revision}: searched {searched}{more}. Load it once where "
        f"the hub is reachable with the same cache folder (or copy that folder here), then it loads offline",
    )


def hub_tokens(model: ModelSection) -> HubTokens:
    """The spec's access tokens by hub (``load_from`` of dataset_info.json)."""
    return {"hf_hub": model.hf_hub_token, "ms_hub": model.ms_hub_token, "om_hub": model.om_hub_token}


def _connection_problem(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if isinstance(current, (ConnectionError, TimeoutError)) or name in ("ConnectError", "ConnectTimeout"):
            return True
        if name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
            return True
        current = current.__cause__ or current.__context__
    return False


def hf_snapshot(attr: DatasetAttr) -> str | None:
    """The local snapshot folder of a Hugging Face dataset repository at the attr's revision, if cached."""
    hub = importlib.import_module("huggingface_hub")
    try:
        return str(
            hub.snapshot_download(
                attr.dataset_name,
                repo_type="dataset",
                revision=attr.revision,
                cache_dir=hf_hub_cache(),
                local_files_only=True,
            )
        )
    except Exception:
        return None


def _from_hf_snapshot(attr: DatasetAttr, cache_dir: str | None, streaming: bool) -> tuple[Any, str]:
    folder = hf_snapshot(attr)
    if folder is None:
        return None, ""
    datasets = importlib.import_module("datasets")
    try:
        loaded = datasets.load_dataset(
            folder,
            name=attr.subset,
            data_dir=attr.folder,
            split=attr.split,
            cache_dir=cache_dir,
            streaming=streaming,
        )
    except Exception as exc:  # e.g. only another split was downloaded
        return None, f"the cached snapshot {folder} cannot be read: {type(exc).__name__}: {exc}"
    return loaded, ""


def _from_hf_arrow(attr: DatasetAttr, cache_dir: str | None, streaming: bool) -> Any:
    """The prepared Arrow dataset of an earlier online load (no revision: its commit is unknown offline)."""
    if attr.revision not in (None, "main"):
        return None
    cache = importlib.import_module("datasets.packaged_modules.cache.cache")
    kwargs = {"data_dir": attr.folder} if attr.folder else {}
    try:
        builder = cache.Cache(
            cache_dir=hf_datasets_cache(cache_dir),
            dataset_name=attr.dataset_name.split("/")[-1],
            repo_id=attr.dataset_name,
            config_name=attr.subset,
            version="auto",
            hash="auto",
            **kwargs,
        )
        return builder.as_streaming_dataset(split=attr.split) if streaming else builder.as_dataset(split=attr.split)
    except Exception:
        return None


def _load_hf(attr: DatasetAttr, cache_dir: str | None, streaming: bool, token: str | None) -> Any:
    reason = "offline mode (HF_HUB_OFFLINE) is set" if _offline_env() else unreachable(hf_endpoint())
    if reason is None:
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
            if not _connection_problem(exc):
                raise hub_error(attr, f"{type(exc).__name__}: {exc}") from exc
            reason = f"the hub cannot be reached ({type(exc).__name__}: {exc})"
    loaded, detail = _from_hf_snapshot(attr, cache_dir, streaming)
    if loaded is None:
        loaded = _from_hf_arrow(attr, cache_dir, streaming)
    if loaded is None:
        caches = [f"the hub cache {hf_hub_cache()}", f"the datasets cache {hf_datasets_cache(cache_dir)}"]
        raise not_cached_error(attr, reason, caches, detail)
    return loaded


def _ms_endpoint() -> str:
    domain = os.getenv("MODELSCOPE_DOMAIN", "www.modelscope.cn")
    return domain if "://" in domain else f"https://{domain}"


def _cached_folder(root: str, repo: str) -> bool:
    return os.path.isdir(os.path.join(root, *repo.split("/")))


def _load_ms(attr: DatasetAttr, cache_dir: str | None, streaming: bool, token: str | None) -> Any:
    try:
        MsDataset = importlib.import_module("modelscope").MsDataset
    except ImportError as exc:
        raise hub_error(attr, "the modelscope package is not installed") from exc
    reason = unreachable(_ms_endpoint())
    if reason and not _cached_folder(ms_cache(cache_dir), attr.dataset_name):
        raise not_cached_error(attr, reason, [f"the ModelScope cache {ms_cache(cache_dir)}"])
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


def _load_om(attr: DatasetAttr, cache_dir: str | None, streaming: bool, token: str | None) -> Any:
    try:
        OmDataset = importlib.import_module("openmind").OmDataset
    except ImportError as exc:
        raise hub_error(attr, "the openmind package is not installed") from exc
    reason = unreachable(os.getenv("OPENMIND_HUB_ENDPOINT", "https://modelers.cn"))
    if reason and not _cached_folder(om_cache(cache_dir), attr.dataset_name):
        raise not_cached_error(attr, reason, [f"the Modelers cache {om_cache(cache_dir)}"])
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


def load_hub_dataset(attr: DatasetAttr, cache_dir: str | None, streaming: bool, tokens: HubTokens | None = None) -> Any:
    """A ``datasets`` Dataset (or IterableDataset when streaming) of a hub dataset's split; ``tokens`` are the
    hubs' access tokens (private or gated datasets), passed as LLaMA-Factory passes them."""
    token = (tokens or {}).get(attr.load_from)
    if attr.load_from == "hf_hub":
        return _load_hf(attr, cache_dir, streaming, token)
    if attr.load_from == "ms_hub":
        return _load_ms(attr, cache_dir, streaming, token)
    return _load_om(attr, cache_dir, streaming, token)


def download_dataset_info(repo_id: str) -> str:
    """dataset_dir 'REMOTE:<repo>': dataset_info.json of a hub dataset repository (the hub cache's copy
    when the hub cannot be reached)."""
    from huggingface_hub import hf_hub_download

    reason = "offline mode (HF_HUB_OFFLINE) is set" if _offline_env() else unreachable(hf_endpoint())
    hint = "download the repository and set dataset_dir to its local folder"
    where = f"dataset_dir 'REMOTE:{repo_id}': dataset_info.json cannot be downloaded"
    options: dict[str, Any] = {"repo_id": repo_id, "filename": "dataset_info.json", "repo_type": "dataset"}
    if reason:
        try:
            return str(hf_hub_download(**options, cache_dir=hf_hub_cache(), local_files_only=True))
        except Exception:
            raise DataError(f"{where}: {reason}, and it is not in the hub cache {hf_hub_cache()}; {hint}") from None
    try:
        return str(hf_hub_download(**options, cache_dir=hf_hub_cache()))
    except Exception as exc:
        raise DataError(f"{where}: {exc}; {hint}") from exc


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
