"""The format writers: one entry per name of ``tunery.spec.export_formats.EXPORT_FORMATS``, imported when
used (each pulls in its own toolchain). ``hf`` is the merged model itself, written by the merge step; the others
are ``Writer`` functions run in ``WRITE_ORDER`` on the merged model.

A writer module may define ``preflight(spec: JobSpec) -> None``: the runner calls it for every requested format
before any work, so a missing package or GPU fails the job at once (raise ``TrainingError``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from tunery.engine.export.types import Writer
from tunery.engine.train.errors import invalid_spec
from tunery.spec import JobSpec


@dataclass(frozen=True)
class WriterEntry:
    name: str
    #: "module:function" of the Writer; None: written by the merge step (the merged model)
    target: str | None


WRITERS: dict[str, WriterEntry] = {
    "hf": WriterEntry("hf", None),
    "gguf": WriterEntry("gguf", "tunery.engine.export.gguf:write_gguf"),
    "onnx": WriterEntry("onnx", "tunery.engine.export.onnx:write_onnx"),
    "gptq": WriterEntry("gptq", "tunery.engine.export.gptq:write_gptq"),
}
#: The order the writers run in (cheap and most wanted first; GPTQ calibration last).
WRITE_ORDER: tuple[str, ...] = ("gguf", "onnx", "gptq")


def _module(entry: WriterEntry) -> Any:
    assert entry.target is not None
    module_name = entry.target.partition(":")[0]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise invalid_spec("export_formats", f"{entry.name} export is not available here: {exc}") from exc


def load_writer(name: str) -> Writer:
    entry = WRITERS[name]
    assert entry.target is not None, f"{name} is written by the merge step"
    return cast(Writer, getattr(_module(entry), entry.target.partition(":")[2]))


def preflight(spec: JobSpec) -> None:
    """Every requested writer's own checks (packages, GPU) before any work; TrainingError when one fails."""
    for name in WRITE_ORDER:
        if name not in spec.export.export_formats:
            continue
        check = getattr(_module(WRITERS[name]), "preflight", None)
        if check is None:
            continue
        cast(Callable[[JobSpec], None], check)(spec)


def writers_for(spec: JobSpec) -> list[str]:
    """The writer formats this job runs, in order."""
    return [name for name in WRITE_ORDER if name in spec.export.export_formats]
