"""`python -m bot db upgrade`: apply Alembic migrations to DATABASE_URL."""

from __future__ import annotations

import argparse

from bot import migrations
from bot.db import database_url


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database migrations")
    commands = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = commands.add_parser("upgrade", help="apply every pending migration (safe to repeat)")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    migrations.upgrade(revision=args.revision)
    print(f"database at {_redacted(database_url())} is at revision {args.revision}")
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
