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
from tunery.server.db.models import JobStatus
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.server.jobs_support import (
    REDIS_URL,
    Account,
    World,
    app_for,
    fresh_database,
    make_settings,
    serve,
)

WAIT = 60  # seconds before a stuck stream fails the test (a safety net, not a timing assertion)


@dataclass
class Backend:
    name: str
    world: World
    address: str


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module", params=["redis", "polling"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Backend]:
    redis_url = REDIS_URL if request.param == "redis" else None
    settings = make_settings(tmp_path_factory.mktemp(f"stream-{request.param}"), database_url, redis_url)
    with serve(app_for(settings)) as address:
        yield Backend(request.param, World(settings), address)


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
    account = world.account()
    job_id = world.job(account.project_id)
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

    other = watch(backend, job_id, subprotocols=["bearer", account.token])  # a second watcher, header auth
    assert other.subprotocol == "bearer"
    first = watch(backend, job_id, token=account.token)
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
        again = watch(backend, job_id, after=seen[-1], token=account.token)  # ... and comes back with its seq
        second_half.set()
        rest, end = read_to_end(again)
    finally:
        second_half.set()
        producer.join()
    assert seen + rest == list(range(1, 42))  # no gap, nothing twice
    assert end == {"type": "end", "status": "succeeded", "last_seq": 41}
    everything, end = read_to_end(other)
    assert everything == list(range(1, 42)) and end["status"] == "succeeded"


def test_lost_publish_is_filled_from_the_db(backend: Backend) -> None:
    world = backend.world
    account = world.account()
    job_id = world.job(account.project_id)
    world.emit(job_id, 1)
    socket = watch(backend, job_id, token=account.token)
    assert receive(socket)["seq"] == 1
    world.emit(job_id, 2, publish=False)  # written, but its publish never reached anyone
    world.emit(job_id, 3)
    assert [receive(socket)["seq"], receive(socket)["seq"]] == [2, 3]
    world.finish(job_id, 4, JobStatus.FAILED)
    assert read_to_end(socket) == ([4], {"type": "end", "status": "failed", "last_seq": 4})


def test_finished_job_replays_and_closes(backend: Backend) -> None:
    world = backend.world
    account = world.account()
    job_id = world.job(account.project_id)
    for seq in (1, 2):
        world.emit(job_id, seq)
    world.finish(job_id, 3, JobStatus.CANCELLED)
    assert read_to_end(watch(backend, job_id, token=account.token))[0] == [1, 2, 3]
    assert read_to_end(watch(backend, job_id, after=3, token=account.token)) == (
        [],
        {"type": "end", "status": "cancelled", "last_seq": 3},
    )


def test_cancelling_a_queued_job_ends_its_stream(backend: Backend) -> None:
    world = backend.world
    account = world.account()
    job_id = world.job(account.project_id, JobStatus.QUEUED)
    socket = watch(backend, job_id, token=account.token)
    response = httpx.post(f"http://{backend.address}/api/jobs/{job_id}/cancel", headers=account.headers, timeout=WAIT)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    message = receive(socket)
    assert (message["seq"], message["type"], message["status"]) == (1, "status", "cancelled")
    assert read_to_end(socket) == ([], {"type": "end", "status": "cancelled", "last_seq": 1})


def test_refused_without_access(backend: Backend) -> None:
    world = backend.world
    owner, stranger = world.account(), world.account()
    job_id = world.job(owner.project_id)
    cases: list[tuple[Account | None, str | None, int]] = [
        (stranger, stranger.token, 404),
        (None, None, 401),
        (None, "tnl_forged.token", 401),
    ]
    for _account, token, status in cases:
        with pytest.raises(InvalidStatus) as refused:
            watch(backend, job_id, token=token)
        assert refused.value.response.status_code == status
    with pytest.raises(InvalidStatus) as refused:
        watch(backend, "no-such-job", token=owner.token)
    assert refused.value.response.status_code == 404
