"""The live event stream on both backends (Redis pub/sub and DB polling), through a real server and socket.

Events are written the way the worker writes them (insert + commit, then publish) from another thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.server.factories import Factory
from tests.server.jobs_support import REDIS_URL, Catalog, serve
from tunery.server import live
from tunery.server.api.app import create_app
from tunery.server.config import Settings
from tunery.server.db.models import JobStatus
from tunery.server.db.session import Database

WAIT = 60  # seconds before a stuck stream fails the test (a safety net, not a timing assertion)


@dataclass
class Backend:
    name: str
    world: Catalog
    factory: Factory
    address: str


@pytest.fixture(params=["redis", "polling"])
def backend(
    request: pytest.FixtureRequest, settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """The API served over a real socket, with live events through Redis or by polling the DB.

    The periodic catch-up from the DB is turned off, so live events can only come through the backend.
    """
    monkeypatch.setattr(live, "CHECK_INTERVAL_SECONDS", 3600.0)
    settings = settings.model_copy(update={"redis_url": REDIS_URL if request.param == "redis" else None})
    with serve(create_app(settings)) as address:
        yield Backend(request.param, Catalog(database, settings), Factory(database, settings), address)


def watch(backend: Backend, job_id: str, after: int = 0, token: str | None = None, **options: Any) -> ClientConnection:
    query = f"after={after}" + (f"&token={token}" if token else "")
    url = f"ws://{backend.address}/api/jobs/{job_id}/stream?{query}"
    return connect(url, open_timeout=WAIT, proxy=None, **options)


def receive(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv(timeout=WAIT))
    return message


def read_to_end(socket: ClientConnection) -> tuple[list[int], dict[str, Any]]:
    """Seqs received until the final message, which is returned too; checks the socket then closes."""
    seqs: list[int] = []
    while (message := receive(socket))["type"] != "end":
        seqs.append(message["seq"])
    with pytest.raises(ConnectionClosedOK):
        socket.recv(timeout=WAIT)
    return seqs, message


def test_replay_then_live_then_reconnect(backend: Backend) -> None:
    world = backend.world
    account = backend.factory.project()
    job_id = world.job(account.id)
    for seq in (1, 2, 3):
        world.emit(job_id, seq, step=seq)
    second_half = threading.Event()

    def worker() -> None:  # keeps writing while clients connect, read, leave and come back
        for seq in range(4, 21):
            world.emit(job_id, seq, step=seq, loss=1.0 / seq)
        second_half.wait(WAIT)
        for seq in range(21, 41):
            world.emit(job_id, seq, step=seq)
        world.finish(job_id, 41)

    with (
        watch(backend, job_id, subprotocols=["bearer", account.owner.token]) as other,  # header auth
        watch(backend, job_id, token=account.owner.token) as first,
    ):
        assert other.subprotocol == "bearer"
        seen = [receive(first)["seq"] for _ in range(3)]
        assert seen == [1, 2, 3]  # replayed from the DB
        producer = threading.Thread(target=worker)
        producer.start()
        try:
            while seen[-1] < 12:
                message = receive(first)
                assert message["type"] == "progress" and message["step"] == message["seq"]
                seen.append(message["seq"])
            first.close()  # the client goes away mid-stream ...
            with watch(backend, job_id, after=seen[-1], token=account.owner.token) as again:  # ... and comes back
                second_half.set()
                rest, end = read_to_end(again)
        finally:
            second_half.set()
            producer.join()
        assert seen + rest == list(range(1, 42))  # no gap, nothing twice
        assert end == {"type": "end", "status": "succeeded", "last_seq": 41}
        everything, end = read_to_end(other)  # a second watcher of the same job got everything too
        assert everything == list(range(1, 42)) and end["status"] == "succeeded"


def test_lost_publish_is_filled_from_the_db(backend: Backend) -> None:
    world = backend.world
    account = backend.factory.project()
    job_id = world.job(account.id)
    world.emit(job_id, 1)
    with watch(backend, job_id, token=account.owner.token) as socket:
        assert receive(socket)["seq"] == 1
        world.emit(job_id, 2, publish=False)  # written, but its publish never reached anyone
        world.emit(job_id, 3)
        assert [receive(socket)["seq"], receive(socket)["seq"]] == [2, 3]
        world.finish(job_id, 4, JobStatus.FAILED)
        assert read_to_end(socket) == ([4], {"type": "end", "status": "failed", "last_seq": 4})


def test_finished_job_replays_and_closes(backend: Backend) -> None:
    world = backend.world
    account = backend.factory.project()
    job_id = world.job(account.id)
    for seq in (1, 2):
        world.emit(job_id, seq)
    world.finish(job_id, 3, JobStatus.CANCELLED)
    with watch(backend, job_id, token=account.owner.token) as socket:
        assert read_to_end(socket)[0] == [1, 2, 3]
    with watch(backend, job_id, after=3, token=account.owner.token) as socket:
        assert read_to_end(socket) == ([], {"type": "end", "status": "cancelled", "last_seq": 3})


def test_cancelling_a_queued_job_ends_its_stream(backend: Backend) -> None:
    world = backend.world
    account = backend.factory.project()
    job_id = world.job(account.id, JobStatus.QUEUED)
    url = f"http://{backend.address}/api/jobs/{job_id}/cancel"
    with watch(backend, job_id, token=account.owner.token) as socket:
        response = httpx.post(url, headers=account.owner.headers, timeout=WAIT)
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        message = receive(socket)
        assert (message["seq"], message["type"], message["status"]) == (1, "status", "cancelled")
        assert read_to_end(socket) == ([], {"type": "end", "status": "cancelled", "last_seq": 1})


def test_refused_without_access(backend: Backend) -> None:
    owner, stranger = backend.factory.project(), backend.factory.project().owner
    job_id = backend.world.job(owner.id)
    for token, status in [(stranger.token, 404), (None, 401), ("tnl_forged.token", 401)]:
        with pytest.raises(InvalidStatus) as refused:
            watch(backend, job_id, token=token)
        assert refused.value.response.status_code == status
    with pytest.raises(InvalidStatus) as refused:
        watch(backend, "no-such-job", token=owner.owner.token)
    assert refused.value.response.status_code == 404
