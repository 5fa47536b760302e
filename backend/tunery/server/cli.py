"""Service commands for ``tunery``: ``register(subparsers)`` adds them, each sets ``handler(args, out) -> int``.

  tunery admin create-user EMAIL [--password P] [--admin]
  tunery admin create-key EMAIL [--name N] [--scopes read,write] [--expires-days D]   (prints the key once)
  tunery models add NAME PATH_OR_HUB_ID [--project P] [--template T]

They read the TUNERY_* settings and bring the database to the newest migration first.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunery.server.auth.keys import SCOPES, ScopeError, check_scopes, create_api_key
from tunery.server.config import Settings
from tunery.server.db.models import Project
from tunery.server.db.session import Database
from tunery.server.errors import ServiceError
from tunery.server.migrations import upgrade_head
from tunery.server.services.base_models import facts_for, register_model
from tunery.server.services.users import create_user, find_user

Handler = Callable[[argparse.Namespace, TextIO], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = subparsers.add_parser("admin", help="manage users and API keys")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    user = admin_commands.add_parser("create-user", help="create a user")
    user.add_argument("email")
    user.add_argument("--password", help="default: asked for (or read from stdin when not a terminal)")
    user.add_argument("--admin", action="store_true", help="make the user an admin")
    user.set_defaults(handler=cmd_create_user)
    key = admin_commands.add_parser("create-key", help="create an API key for a user and print it (once)")
    key.add_argument("email")
    key.add_argument("--name", default="cli")
    key.add_argument("--scopes", default=",".join(SCOPES), help=f"comma-separated: {', '.join(SCOPES)}")
    key.add_argument("--expires-days", type=int, help="default: never expires")
    key.set_defaults(handler=cmd_create_key)

    models = subparsers.add_parser("models", help="manage registered base models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    add = model_commands.add_parser("add", help="register a local model folder or a hub id")
    add.add_argument("name")
    add.add_argument("path_or_hub_id")
    add.add_argument("--project", help="project id or slug (default: shared with every project)")
    add.add_argument("--template", help="chat template (default: guessed from the model folder)")
    add.set_defaults(handler=cmd_models_add)


def _run(out: TextIO, work: Callable[[Session], int]) -> int:
    database = Database.from_settings(Settings.from_env())
    try:
        upgrade_head(database.engine)
        with database.session() as session:
            return work(session)
    except ServiceError as exc:
        sys.stderr.write(f"error: {exc.detail}\n")
        return 2
    finally:
        database.dispose()


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise ServiceError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_create_user(args: argparse.Namespace, out: TextIO) -> int:
    password = _password(args)

    def work(session: Session) -> int:
        try:
            user = create_user(session, args.email, password, admin=args.admin)
        except ValueError as exc:  # a weak password
            raise ServiceError(str(exc)) from exc
        session.commit()
        out.write(f"created {'admin' if user.is_admin else 'user'} {user.email} ({user.id})\n")
        return 0

    return _run(out, work)


def cmd_create_key(args: argparse.Namespace, out: TextIO) -> int:
    def work(session: Session) -> int:
        user = find_user(session, args.email)
        if user is None:
            raise ServiceError(f"no user with email {args.email}")
        try:
            scopes = check_scopes([s.strip() for s in args.scopes.split(",") if s.strip()])
        except ScopeError as exc:
            raise ServiceError(str(exc)) from exc
        days = args.expires_days
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        row, key = create_api_key(session, user, args.name, scopes, expires)
        session.commit()
        sys.stderr.write(f"API key {row.prefix} for {user.email} ({', '.join(scopes)}); it is shown only now:\n")
        out.write(key + "\n")
        return 0

    return _run(out, work)


def cmd_models_add(args: argparse.Namespace, out: TextIO) -> int:
    location = str(args.path_or_hub_id)
    if Path(location).expanduser().exists():
        location = str(Path(location).expanduser().resolve())

    def work(session: Session) -> int:
        project_id = None
        if args.project:
            project = session.scalar(
                select(Project).where((Project.id == args.project) | (Project.slug == args.project))
            )
            if project is None:
                raise ServiceError(f"no project {args.project}")
            project_id = project.id
        model = register_model(
            session, project_id, args.name, location, facts_for(location, None), template=args.template
        )
        session.commit()
        size = f"{model.num_parameters:,} parameters" if model.num_parameters else "size unknown"
        out.write(f"registered {model.name}: {model.architecture or 'unknown architecture'}, {size}, ")
        out.write(f"template {model.template or 'none'} ({'project ' + args.project if project_id else 'shared'})\n")
        return 0

    return _run(out, work)
