"""Log redaction: login tokens (``tnl_``), API keys (``tny_``) and ``?token=`` values never reach log output.

Our code never logs credentials; this guards what servers log for us (uvicorn logs websocket paths with
their query string, and access lines with paths).
"""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    re.compile(r"\b(tn[ly]_)[A-Za-z0-9_\-.]+"),
    re.compile(r"([?&](?:token|access_token|api_key|key)=)[^&\s\"']+", re.IGNORECASE),
)
#: loggers whose records may carry request paths
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "httpx")


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1[redacted]", text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and string arguments (keeping their positions for formatters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install() -> None:
    """Attach the filter to the loggers that may see credentials (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())
