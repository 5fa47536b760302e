"""Redis pub/sub: one channel per job; publish is sync (worker), subscriptions are async (API)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio as aioredis

from tunery.server.live.messages import channel, decode, encode

log = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> redis.Redis:
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            _clients[url] = client
        return client


def publish(url: str, job_id: str, message: Mapping[str, Any]) -> bool:
    """Send one message; False (and a warning) when Redis cannot be reached — the DB row stays the truth."""
    try:
        _client(url).publish(channel(job_id), encode(message))
    except redis.RedisError as exc:
        log.warning("live publish for job %s failed: %s", job_id, type(exc).__name__)
        return False
    return True


class RedisSubscription:
    """Messages published on a job's channel after :meth:`open` returned."""

    def __init__(self, url: str, job_id: str) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        self._pubsub = self._client.pubsub()
        self._channel = channel(job_id)

    async def open(self) -> None:
        await self._pubsub.subscribe(self._channel)
        # wait for the confirmation, so that nothing published from now on is missed
        while True:
            reply = await self._pubsub.get_message(timeout=5)
            if reply is None:
                raise redis.ConnectionError("no subscribe confirmation from Redis")
            if reply.get("type") == "subscribe":
                return

    async def next_batch(self, after_seq: int, timeout: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        wait = timeout
        while True:
            raw = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if raw is None:
                return messages
            decoded = decode(raw["data"]) if raw.get("type") == "message" else None
            if decoded is not None:
                messages.append(decoded)
            wait = 0.0  # drain what is already there, then hand it over

    async def close(self) -> None:
        try:
            await self._pubsub.unsubscribe()
            await self._pubsub.aclose()
        finally:
            await self._client.aclose()
