"""Training failures with stable error codes, and how any exception maps to one."""

from __future__ import annotations

from typing import Literal

from tunery.spec.errors import SpecError
from tunery.spec.events import EXIT_FAILED, EXIT_INVALID

ErrorCode = Literal["invalid_spec", "invalid_data", "unsupported_hardware", "out_of_memory", "internal"]
ERROR_CODES: tuple[str, ...] = (
    "invalid_spec",
    "invalid_data",
    "unsupported_hardware",
    "out_of_memory",
    "internal",
)

#: Codes whose cause is the job itself (fix the spec or data); the others are environment/runtime failures.
_INVALID_JOB_CODES = ("invalid_spec", "invalid_data")

#: Exceptions raised by these packages are problems with the user's data.
_DATA_MODULES = ("tunery.engine.data", "tunery.engine.tokenize")


class TrainingError(Exception):
    """A failure the engine understands, with a stable code and a message meant for the user."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def invalid_spec(key: str, message: str) -> TrainingError:
    """A problem with one spec key, e.g. ``invalid_spec("lora_target", "...")``."""
    return TrainingError("invalid_spec", f"{key}: {message}")


def unsupported_hardware(key: str, message: str) -> TrainingError:
    return TrainingError("unsupported_hardware", f"{key}: {message}")


def classify(exc: BaseException) -> tuple[ErrorCode, str]:
    """The (code, message) to report for any exception raised while training."""
    if isinstance(exc, TrainingError):
        return exc.code, exc.message
    if isinstance(exc, SpecError):
        return "invalid_spec", str(exc)
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in ERROR_CODES:
        return code, str(exc)  # type: ignore[return-value]
    if _is_out_of_memory(exc):
        return (
            "out_of_memory",
            f"out of memory: {exc}. Lower per_device_train_batch_size or cutoff_len, or enable gradient checkpointing.",
        )
    if type(exc).__module__.startswith(_DATA_MODULES):
        return "invalid_data", str(exc)
    return "internal", f"{type(exc).__name__}: {exc}"


def exit_code_for(code: str) -> int:
    return EXIT_INVALID if code in _INVALID_JOB_CODES else EXIT_FAILED


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency of the engine
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
