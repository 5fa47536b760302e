"""Load for the service benchmark: an open-loop HTTP generator and a websocket fan-out probe.

Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to earlier ones; latency is counted
from that due time (so a stalled server or generator cannot hide queueing), and also from the actual send.
Everything is bounded: a fixed number of requests, a wall-clock cap, per-request timeouts.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class LatencyStats:
    """Latencies in milliseconds and what went wrong."""

    name: str
    samples: list[float] = field(default_factory=list)
    send_lag: list[float] = field(default_factory=list)  # generator: actual send - due time
    errors: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    planned: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        ok = self.samples
        return {
            "name": self.name,
            "planned": self.planned,
            "ok": len(ok),
            "errors": dict(self.errors),
            "achieved_per_s": round(len(ok) / self.wall_seconds, 1) if self.wall_seconds else 0.0,
            "p50_ms": round(statistics.median(ok), 2) if ok else None,
            "p90_ms": round(percentile(ok, 90), 2) if ok else None,
            "p99_ms": round(percentile(ok, 99), 2) if ok else None,
            "max_ms": round(max(ok), 2) if ok else None,
            "send_lag_p99_ms": round(percentile(self.send_lag, 99), 2) if self.send_lag else None,
        }


async def open_loop(
    client: httpx.AsyncClient, name: str, paths: Callable[[int], str], rate: float, count: int, cap_seconds: float
) -> LatencyStats:
    """``count`` GETs at ``rate`` per second (path ``paths(i)``), each counted from its due time."""
    stats = LatencyStats(name, planned=count)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    deadline = start + cap_seconds

    async def one(index: int, due: float) -> None:
        sent = loop.time()
        stats.send_lag.append((sent - due) * 1000)
        try:
            response = await client.get(paths(index))
        except httpx.HTTPError as exc:
            stats.error(type(exc).__name__)
            return
        done = loop.time()
        if response.status_code != 200:
            stats.error(f"HTTP {response.status_code}")
            return
        stats.samples.append((done - due) * 1000)

    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        due = start + index / rate
        if due > deadline:
            stats.error("not sent (cap)")
            continue
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    left = max(1.0, deadline + 10 - loop.time())
    _done, pending = await asyncio.wait(tasks, timeout=left) if tasks else (set(), set())
    for task in pending:
        task.cancel()
        stats.error("unfinished")
    stats.wall_seconds = loop.time() - start
    return stats


@dataclass
class FanOut:
    """Receipt latencies of live events at websocket clients (event time -> client receipt)."""

    samples: list[float] = field(default_factory=list)
    received: dict[int, int] = field(default_factory=dict)  # client -> measured events received
    warm: set[int] = field(default_factory=set)  # clients that got the warm-up event
    connect_errors: int = 0
    publisher_code: int | None = None


def _event_time(message: dict[str, Any]) -> float | None:
    raw = message.get("time")
    if not isinstance(raw, str):
        return None
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


async def _client(number: int, url: str, result: FanOut, ready: asyncio.Event, stop: asyncio.Event) -> None:
    try:
        socket: ClientConnection = await connect(url, open_timeout=60, max_queue=None)
    except Exception:
        result.connect_errors += 1
        ready.set()
        return
    result.received[number] = 0
    ready.set()
    try:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
            except TimeoutError:
                continue
            arrived = time.time()
            message = json.loads(raw)
            if message.get("type") == "end":
                return
            if message.get("type") != "progress":
                continue
            if message.get("step") == 0:  # the warm-up event
                result.warm.add(number)
                continue
            sent = _event_time(message)
            if sent is not None:
                result.samples.append((arrived - sent) * 1000)
                result.received[number] += 1
    except Exception:
        return
    finally:
        await socket.close()


async def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def fan_out(
    url: str, clients: int, argv: list[str], env: dict[str, str], run_seconds: float, connect_batch: int = 20
) -> FanOut:
    """Connect ``clients`` websockets to ``url``; start the publisher ``argv``: it sends a warm-up event (step
    0), waits for ``go`` on stdin, then sends the measured events and exits. Collect every receipt."""
    result = FanOut()
    stop = asyncio.Event()
    tasks = []
    for first in range(0, clients, connect_batch):
        batch = [asyncio.Event() for _ in range(first, min(clients, first + connect_batch))]
        for offset, ready in enumerate(batch):
            tasks.append(asyncio.create_task(_client(first + offset, url, result, ready, stop)))
        await asyncio.wait([asyncio.create_task(e.wait()) for e in batch], timeout=60)
    publisher = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.PIPE)
    try:
        await _until(lambda: len(result.warm) >= len(result.received), 60)  # every subscription is live
        assert publisher.stdin is not None
        publisher.stdin.write(b"go\n")
        await publisher.stdin.drain()
        result.publisher_code = await asyncio.wait_for(publisher.wait(), timeout=run_seconds + 60)
        await asyncio.sleep(2.0)  # the last events arrive
    finally:
        if publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        stop.set()
        await asyncio.wait(tasks, timeout=30)
    return result
