"""Process commands: ``tunery worker``, ``tunery scheduler``, ``tunery server`` and ``tunery up``.

``register(subparsers)`` adds them to the ``tunery`` parser; each parser's ``handler`` default is the
function to call with the parsed arguments and an output stream. Also runnable as
``python -m tunery.server.cli_processes COMMAND`` (that is how ``tunery up`` starts its children).
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

from tunery.server.config import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
UP_WORKER_STOP_SECONDS = 180.0  # a stopping worker lets its engines checkpoint first

Command = Callable[[argparse.Namespace, TextIO], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = subparsers.add_parser("worker", help="run jobs from the queue (GPUs from nvidia-smi, else CPU slots)")
    worker.add_argument("--queues", default="gpu,default", help="queues to consume (default: gpu,default)")
    worker.add_argument(
        "--concurrency", type=int, help="jobs at once: CPU slots on a CPU-only worker (default 1), at most the GPUs"
    )
    worker.add_argument("--name", help="unique worker name (default: HOST:PID)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(handler=cmd_worker)

    scheduler = subparsers.add_parser("scheduler", help="run the periodic reaper (Celery beat)")
    scheduler.add_argument("--loglevel", default="INFO")
    scheduler.set_defaults(handler=cmd_scheduler)

    server = subparsers.add_parser("server", help="run the API server (uvicorn)")
    _add_address(server)
    server.add_argument("--workers", type=int, default=1, help="server processes (default 1; about one per core)")
    server.set_defaults(handler=cmd_server)

    up = subparsers.add_parser("up", help="migrate, then run server + worker + scheduler together")
    _add_address(up)
    up.set_defaults(handler=cmd_up)


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="[%(asctime)s %(levelname)s %(processName)s] %(name)s: %(message)s")


def cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.server.worker.lifecycle import run_worker, worker_identity

    _logging(args.loglevel)
    queues = tuple(q.strip() for q in args.queues.split(",") if q.strip())
    if not queues:
        raise SystemExit("--queues needs at least one queue")
    if args.concurrency is not None and args.concurrency < 1:
        raise SystemExit("--concurrency must be at least 1")
    name = args.name or f"{socket.gethostname()}:{_pid()}"
    return run_worker(Settings.from_env(), worker_identity(name, queues, args.concurrency), args.loglevel)


def cmd_scheduler(args: argparse.Namespace, out: TextIO) -> int:
    from tunery.server.worker.lifecycle import run_scheduler

    _logging(args.loglevel)
    return run_scheduler(Settings.from_env(), args.loglevel)


def cmd_server(args: argparse.Namespace, out: TextIO) -> int:
    import uvicorn

    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    if args.workers > 1 and Settings.from_env().migrate_on_start:  # once here, not in every process at once
        import os

        from tunery.server.db.session import Database
        from tunery.server.migrations import upgrade_head

        database = Database.from_settings(Settings.from_env())
        try:
            upgrade_head(database.engine)
        finally:
            database.dispose()
        os.environ["TUNERY_MIGRATE_ON_START"] = "0"
    uvicorn.run("tunery.server.api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_up(args: argparse.Namespace, out: TextIO) -> int:
    """Migrate, bootstrap a first start, start server + worker + scheduler, print the URL, supervise until
    SIGINT/SIGTERM."""
    import os

    from tunery.server.bootstrap import bootstrap, login_hint
    from tunery.server.db.session import Database
    from tunery.server.demo_model_setup import start_in_background, stop_background
    from tunery.server.migrations import upgrade_head
    from tunery.server.storage import Storage
    from tunery.server.supervisor import ChildSpec, Supervisor, stop_on_signals

    settings = Settings.from_env()
    if not _port_free(args.host, args.port):
        out.write(f"error: {args.host}:{args.port} is already in use (choose another with --port)\n")
        return 1
    logging.basicConfig(level=logging.INFO, format="[tunery up] %(levelname)s %(name)s: %(message)s")
    database = Database.from_settings(settings)
    try:
        upgrade_head(database.engine)
        first_start = bootstrap(settings, database)
    finally:
        database.dispose()
    Storage(settings.storage_root).ensure()

    env = dict(os.environ, TUNERY_HOME=str(settings.home), TUNERY_MIGRATE_ON_START="0")
    base = [sys.executable, "-m", "tunery.server.cli_processes"]
    specs = [
        ChildSpec("server", [*base, "server", "--host", args.host, "--port", str(args.port)], env),
        ChildSpec("scheduler", [*base, "scheduler"], env),
        ChildSpec("worker", [*base, "worker", "--name", f"{socket.gethostname()}-up"], env, UP_WORKER_STOP_SECONDS),
    ]
    stop = threading.Event()
    stop_on_signals(stop)
    supervisor = Supervisor(specs, out)
    supervisor.start()
    demo_model = start_in_background(settings, env)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    out.write(f"Tunery is running at http://{shown}:{args.port}  (database: {_backend(settings.database_url)}, ")
    out.write(f"broker: {_backend(settings.broker_url)}; data in {settings.home}). Press Ctrl-C to stop.\n")
    hint = login_hint(first_start, settings)
    if hint:
        out.write(hint + "\n")
    out.flush()
    try:
        code = supervisor.run(stop)
    finally:
        stop_background(demo_model)
    out.write("[tunery up] stopped\n")
    return code


def _backend(url: str) -> str:
    return url.split("://", 1)[0]


def _pid() -> int:
    import os

    return os.getpid()


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


COMMANDS: dict[str, Command] = {"worker": cmd_worker, "scheduler": cmd_scheduler, "server": cmd_server, "up": cmd_up}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tunery")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    command: Command = args.handler
    return command(args, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
