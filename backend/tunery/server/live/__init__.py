"""Live job events: ``publish`` (sync, safe from the worker) and subscriptions for the stream endpoint.

With ``TUNERY_REDIS_URL`` set, events go through Redis pub/sub; without it ``publish`` does nothing and
subscribers poll the ``job_events`` table. Either way the DB row is the truth: publish after committing it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tunery.server.config import Settings
from tunery.server.live import redis_backend
from tunery.server.live.follow import Subscription, follow
from tunery.server.live.messages import event_message
from tunery.server.live.polling import PollingSubscription
from tunery.server.live.replay import SessionFactory, load_events

#: how often the polling backend reads new events
POLL_INTERVAL_SECONDS = 0.5
#: how often a stream checks the job row and catches up from the DB (events a lost publish never carried)
CHECK_INTERVAL_SECONDS = 2.0

__all__ = ["Subscription", "event_message", "follow", "load_events", "open_subscription", "publish"]


def publish(job_id: str, payload: Mapping[str, Any], settings: Settings | None = None) -> None:
    """Push one event (as built by :func:`event_message`; it must carry the job-level ``seq``) to watchers.

    Never raises for an unreachable Redis: watchers then catch up from the DB.
    """
    url = settings.redis_url if settings is not None else os.environ.get("TUNERY_REDIS_URL") or None
    if url:
        redis_backend.publish(url, job_id, payload)


def open_subscription(settings: Settings, factory: SessionFactory, job_id: str) -> Subscription:
    """A (not yet opened) subscription to the job's events, on the configured backend."""
    if settings.redis_url:
        return redis_backend.RedisSubscription(settings.redis_url, job_id)
    return PollingSubscription(factory, job_id, POLL_INTERVAL_SECONDS)
