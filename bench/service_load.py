"""Load for the service benchmark: an open-loop HTTP generator and a websocket fan-out probe.

Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to earlier ones; latency is counted
from that due time (so a stalled server or generator cannot hide queueing), and also from the actual send.
Everything is bounded: a fixed number of requests, a wall-clock cap, per-request timeouts. The generator
shares the machine with the server, so its requests go through ``KeepAliveClient`` (a few lines of HTTP/1.1
on asyncio streams), which costs a fraction of httpx's CPU per request.
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
from urllib.parse import urlsplit

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
    cpu_seconds: float = 0.0  # the generator's own CPU time during the run
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
            "generator_cpu_pct": round(100 * self.cpu_seconds / self.wall_seconds) if self.wall_seconds else None,
        }


class KeepAliveClient:
    """GET requests over reused HTTP/1.1 connections (one request per connection at a time); returns the
    status. Bodies are read (Content-Length or chunked) and dropped."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        fixed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._fixed = f"Host: {self.host}:{self.port}\r\n{fixed}\r\n"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> int:
        reused = bool(self._idle)
        connection = self._idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
        reader, writer = connection
        try:
            writer.write(f"GET {path} HTTP/1.1\r\n{self._fixed}".encode("latin-1"))
            status, keep = await asyncio.wait_for(self._response(reader), self.timeout)
        except asyncio.IncompleteReadError:
            writer.close()
            if reused:  # the server closed an idle connection: once more on a new one
                return await self.get(path)
            raise
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append(connection)
        else:
            writer.close()
        return status

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head[1:])}
        if "content-length" in fields:
            await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readuntil(b"\r\n")).strip() or b"0", 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        return status, fields.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()


async def open_loop(
    client: KeepAliveClient,
    name: str,
    paths: Callable[[int], str],
    rate: float,
    count: int,
    cap_seconds: float,
    max_in_flight: int = 256,
) -> LatencyStats:
    """``count`` GETs at ``rate`` per second (path ``paths(i)``), each counted from its due time.

    A request due while ``max_in_flight`` are unanswered is not sent and counted as an error (the server is
    not keeping up); this bounds the generator's own work, so it stays on schedule."""
    stats = LatencyStats(name, planned=count)
    clock = time.perf_counter  # not loop.time(): uvloop's is cached per loop iteration, in whole milliseconds
    cpu_started = time.process_time()
    start = clock() + 0.05
    deadline = start + cap_seconds
    in_flight = 0

    async def one(index: int, due: float) -> None:
        nonlocal in_flight
        sent = clock()
        stats.send_lag.append((sent - due) * 1000)
        try:
            status = await client.get(paths(index))
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            stats.error(type(exc).__name__)
            return
        finally:
            in_flight -= 1
        done = clock()
        if status != 200:
            stats.error(f"HTTP {status}")
            return
        stats.samples.append((done - due) * 1000)

    tasks: list[asyncio.Task[None]] = []
    for index in range(count):
        due = start + index / rate
        if due > deadline:
            stats.error("not sent (cap)")
            continue
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:
            stats.error(f"not sent: {max_in_flight} in flight")
            continue
        in_flight += 1
        tasks.append(asyncio.create_task(one(index, due)))
    left = max(1.0, deadline + 10 - clock())
    _done, pending = await asyncio.wait(tasks, timeout=left) if tasks else (set(), set())
    for task in pending:
        task.cancel()
        stats.error("unfinished")
    await asyncio.gather(*pending, return_exceptions=True)  # nothing of this run lingers into the next
    stats.wall_seconds = clock() - start
    stats.cpu_seconds = time.process_time() - cpu_started
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
