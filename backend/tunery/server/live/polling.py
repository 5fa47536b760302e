"""The no-Redis backend: a subscription that polls the job_events table."""

from __future__ import annotations

from typing import Any

import anyio

from tunery.server.live.replay import SessionFactory, read_events


class PollingSubscription:
    """Rows with ``seq`` past the caller's cursor, read every ``interval`` seconds."""

    def __init__(self, factory: SessionFactory, job_id: str, interval: float) -> None:
        self._factory = factory
        self._job_id = job_id
        self._interval = interval

    async def open(self) -> None:
        return None

    async def next_batch(self, after_seq: int, timeout: float) -> list[dict[str, Any]]:
        await anyio.sleep(min(self._interval, timeout))
        return await anyio.to_thread.run_sync(read_events, self._factory, self._job_id, after_seq)

    async def close(self) -> None:
        return None
