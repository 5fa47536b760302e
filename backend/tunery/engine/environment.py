"""What this machine offers for training: versions and devices (``tunery env``)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "tokenizers", "vllm")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_environment() -> dict[str, str]:
    import torch

    from tunery import __version__

    info = {"tunery": __version__, "python": platform.python_version(), "platform": platform.platform()}
    info.update({name: _version(name) for name in PACKAGES})
    info["cpu threads"] = str(torch.get_num_threads())
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info[f"cuda:{index}"] = f"{props.name}, {props.total_memory / 2**30:.1f} GiB"
        info["bf16"] = str(torch.cuda.is_bf16_supported())
    else:
        info["accelerator"] = "none (CPU training, fp32)"
    if torch.backends.mps.is_available():
        info["mps"] = "available"
    return info
