"""Publisher of the websocket fan-out benchmark: progress events relayed exactly as the worker relays them
(one transaction per event that fences on the lease, inserts the event and its metrics, then a Redis publish).

python bench/service_publish.py JOB_ID LEASE_OWNER COUNT RATE   (TUNERY_DATABASE_URL / TUNERY_REDIS_URL set)
Sends a warm-up event (step 0), waits for a line on stdin, then COUNT events at RATE per second.
"""

from __future__ import annotations

import sys
import time

from tunery.server.config import Settings
from tunery.server.db.models import JobKind
from tunery.server.db.session import Database
from tunery.server.worker.claim import Claim
from tunery.server.worker.relay import EventRelay
from tunery.spec.events import ProgressEvent


def event(seq: int, step: int, total: int) -> ProgressEvent:
    """A progress event stamped now (the latency clock starts here, before the DB write)."""
    return ProgressEvent(
        seq=seq, step=step, total_steps=total, epoch=step / total, loss=2.0 - step / total, lr=1e-4,
        grad_norm=0.5, tokens_per_second=1234.5, elapsed_seconds=float(step), eta_seconds=float(total - step),
    )  # fmt: skip


def main(argv: list[str]) -> int:
    job_id, lease_owner, count, rate = argv[0], argv[1], int(argv[2]), float(argv[3])
    settings = Settings.from_env()
    database = Database.from_settings(settings)
    claim = Claim(
        job_id=job_id, attempt=1, worker="bench", lease_owner=lease_owner, gpus=(), seq_offset=0, log_offset=0,
        kind=JobKind.TRAIN, spec={}, resume_from=None, started_event={},
    )  # fmt: skip
    relay = EventRelay(database.sessions, claim, settings.storage_root)
    relay.relay(event(1, 0, count))
    sys.stdin.readline()
    start = time.monotonic()
    for step in range(1, count + 1):
        delay = start + (step - 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        relay.relay(event(step + 1, step, count))
    database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
