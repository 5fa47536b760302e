"""The wire form of job events, shared by the DB replay, the live backends and the worker's publish."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

#: Event types after which the job may have finished (the stream then checks the job row).
TERMINAL_TYPES = frozenset({"finished", "failed", "status"})


def event_message(
    seq: int, type: str, attempt: int, payload: Mapping[str, Any], time: datetime | None = None
) -> dict[str, Any]:
    """One event as clients see it: the engine payload, with the job-level ``seq``, ``type`` and ``attempt``."""
    message = dict(payload)
    message.update(seq=seq, type=type, attempt=attempt)
    if time is not None and "time" not in message:
        message["time"] = time.isoformat()
    return message


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, default=str, separators=(",", ":"))


def decode(raw: str | bytes) -> dict[str, Any] | None:
    """A message read from a channel, or None when it is not a JSON object with an integer ``seq``."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("seq"), int) or isinstance(value["seq"], bool):
        return None
    return value


def channel(job_id: str) -> str:
    return f"tunery:job:{job_id}:events"
