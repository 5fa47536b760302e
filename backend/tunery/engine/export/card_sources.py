"""What the model card reads from disk: the base model's hub id and license, each adapter's settings, saved job
file and final metrics. Everything here is best effort: a missing or unreadable file gives nothing, never an error."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunery.spec.job import SECTIONS

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CACHE_DIR = re.compile(r"models--([\w.-]+)--([\w.-]+)")
#: job-file keys never written into a card (credentials)
_SECRET = re.compile(r"token|secret|password|api_key", re.IGNORECASE)
#: the adapter_config.json keys worth showing
ADAPTER_KEYS = ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "init_lora_weights")
#: job files a run leaves: Tunery's worker (jobs/<id>/job.yaml next to jobs/<id>/output), LLaMA-Factory's web UI
_JOB_FILES = ("job.yaml", "training_args.yaml")


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not Path(name).expanduser().exists()


def hub_id(name_or_path: str) -> str | None:
    """The Hugging Face id of a model named by id or by a folder of the hub cache (``models--org--name``)."""
    if is_hub_id(name_or_path):
        return name_or_path
    found = _CACHE_DIR.search(name_or_path)
    return f"{found.group(1)}/{found.group(2)}" if found else None


@dataclass
class License:
    license: str
    name: str | None = None
    link: str | None = None
    source: str | None = None  # where it was read; None: unknown


def _front_matter(readme: Path) -> dict[str, Any]:
    from huggingface_hub.repocard import metadata_load

    if not readme.is_file():
        return {}
    try:
        return metadata_load(readme) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}


def _gguf_license(path: Path) -> str | None:
    try:
        from gguf import GGUFReader

        found = GGUFReader(path).get_field("general.license")
        value = found.contents() if found is not None else None
    except (OSError, ValueError, KeyError):
        return None
    return value if isinstance(value, str) and value else None


def base_license(name_or_path: str, gguf_file: str | None, repo: str | None = None) -> License:
    """The base model's license: its README front matter (local folder, or the hub cache for ``repo``), else the
    GGUF's ``general.license``; "other" when none says."""
    folder = Path(name_or_path).expanduser()
    readmes = [folder / "README.md"]
    repo = repo or hub_id(name_or_path)
    if repo is not None:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo, "README.md")
        if isinstance(cached, str):
            readmes.append(Path(cached))
    for readme in readmes:
        meta = _front_matter(readme)
        value = meta.get("license")
        if isinstance(value, str) and value:
            return License(value, meta.get("license_name"), meta.get("license_link"), f"{readme.name} of the base")
    if gguf_file:
        value = _gguf_license(folder / gguf_file)
        if value:
            return License(value, source=f"{gguf_file} (general.license)")
    return License("other", name="unknown")


@dataclass
class AdapterInfo:
    path: str
    settings: dict[str, Any] = field(default_factory=dict)
    base_model: str | None = None
    job: dict[str, Any] = field(default_factory=dict)
    job_file: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    metrics_file: str | None = None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def flat_job(raw: Any) -> dict[str, Any]:
    """A job file's keys, flat (nested sections unfolded), credentials left out."""
    flat: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return flat
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update(flat_job(value))
        elif not _SECRET.search(str(key)):
            flat[str(key)] = value
    return flat


def _job_file(folder: Path) -> Path | None:
    candidates = [folder / name for name in _JOB_FILES]
    if folder.name == "output":  # the worker's jobs/<id>/output
        candidates.append(folder.parent / "job.yaml")
    if folder.name.startswith("checkpoint-") and folder.parent.name == "output":
        candidates.append(folder.parent.parent / "job.yaml")
    return next((path for path in candidates if path.is_file()), None)


def _final_metrics(folder: Path) -> tuple[dict[str, Any], str | None]:
    """all_results.json of a finished run; for a checkpoint, the last logged values in trainer_state.json."""
    results = _json(folder / "all_results.json")
    if isinstance(results, dict):
        return results, "all_results.json"
    state = _json(folder / "trainer_state.json")
    history = state.get("log_history") if isinstance(state, dict) else None
    metrics: dict[str, Any] = {}
    for entry in history if isinstance(history, list) else []:
        if isinstance(entry, dict):
            metrics.update({k: v for k, v in entry.items() if isinstance(v, (int, float))})
    return metrics, "trainer_state.json" if metrics else None


def read_adapter(path: str) -> AdapterInfo:
    info = AdapterInfo(path=path)
    folder = Path(path).expanduser()
    config = _json(folder / "adapter_config.json")
    if isinstance(config, dict):
        info.settings = {key: config[key] for key in ADAPTER_KEYS if config.get(key) not in (None, "", [], {})}
        base = config.get("base_model_name_or_path")
        info.base_model = base if isinstance(base, str) else None
    job_file = _job_file(folder)
    if job_file is not None:
        try:
            info.job = flat_job(yaml.safe_load(job_file.read_text(encoding="utf-8")))
            info.job_file = job_file
        except (OSError, yaml.YAMLError):
            pass
    info.metrics, info.metrics_file = _final_metrics(folder)
    return info
