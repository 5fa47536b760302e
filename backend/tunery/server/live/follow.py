"""Follow one job: replay what the client missed from the DB, then push live events, then say goodbye.

Order matters: subscribe first, then replay, then drop live events with ``seq <= last sent``; so an event
committed while we replay is sent exactly once. A gap in live seqs (a lost publish) is filled from the DB,
and the job row is checked every ``check_interval`` seconds (catching events the channel never carried
and jobs that finished without a terminal event).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio

from tunery.server.live.messages import TERMINAL_TYPES
from tunery.server.live.replay import SessionFactory, read_events, read_status

Send = Callable[[dict[str, Any]], Awaitable[None]]
REPLAY_PAGE = 500


class Subscription(Protocol):
    async def open(self) -> None: ...

    async def next_batch(self, after_seq: int, timeout: float) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class _Follower:
    def __init__(self, factory: SessionFactory, job_id: str, after_seq: int, send: Send) -> None:
        self.factory = factory
        self.job_id = job_id
        self.last = after_seq
        self.send = send

    async def replay(self) -> None:
        while True:
            page = await anyio.to_thread.run_sync(read_events, self.factory, self.job_id, self.last, REPLAY_PAGE)
            for message in page:
                await self.push(message)
            if len(page) < REPLAY_PAGE:
                return

    async def push(self, message: dict[str, Any]) -> None:
        if message["seq"] <= self.last:
            return
        await self.send(message)
        self.last = message["seq"]

    async def live(self, batch: list[dict[str, Any]]) -> bool:
        """Send a live batch; True when it holds an event after which the job may be over."""
        terminal = False
        for message in sorted(batch, key=lambda item: int(item["seq"])):
            if message["seq"] > self.last + 1:
                await self.replay()  # a publish was lost: take the missing ones from the DB
            await self.push(message)
            terminal = terminal or message.get("type") in TERMINAL_TYPES
        return terminal

    async def finished(self) -> bool:
        """Catch up from the DB; when the job is over (or gone), send the final message and say so."""
        status = await anyio.to_thread.run_sync(read_status, self.factory, self.job_id)
        await self.replay()
        if status is not None and not status.finished:
            return False
        await self.send({"type": "end", "status": status.value if status else None, "last_seq": self.last})
        return True


async def follow(
    factory: SessionFactory,
    subscription: Subscription,
    job_id: str,
    after_seq: int,
    send: Send,
    check_interval: float = 2.0,
) -> int:
    """Stream the job's events past ``after_seq`` through ``send`` until it finishes; the last seq sent."""
    follower = _Follower(factory, job_id, after_seq, send)
    await subscription.open()
    try:
        while not await follower.finished():
            deadline = anyio.current_time() + check_interval
            while (left := deadline - anyio.current_time()) > 0:
                batch = await subscription.next_batch(follower.last, left)
                if await follower.live(batch):
                    break
    finally:
        with anyio.CancelScope(shield=True):
            await subscription.close()
    return follower.last
