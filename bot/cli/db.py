"""`python -m bot db upgrade|grant`: apply Alembic migrations to DATABASE_URL; grant the bot role."""

from __future__ import annotations

import argparse
import sys

from bot import migrations
from bot.db import database_url, transaction
from bot.grants import GrantRefused, grant


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database migrations")
    commands = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = commands.add_parser("upgrade", help="apply every pending migration (safe to repeat)")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=_upgrade)
    grant_ = commands.add_parser(
        "grant",
        help="PostgreSQL: give the role the bot runs as what it needs, and nothing more",
        description="Run as the owner of the tables, after `db upgrade`. Revokes everything ROLE"
        " had on the tables, then grants what the bot needs (no DELETE or UPDATE of tags and"
        " consent history, no TRUNCATE or DDL), and creates Rasa's `events` table if missing."
        " Refuses a superuser ROLE or one that owns the tables. Safe to repeat.",
    )
    grant_.add_argument("--role", required=True, help="the PostgreSQL role the bot connects as")
    grant_.set_defaults(handler=_grant)


def _upgrade(args: argparse.Namespace) -> int:
    migrations.upgrade(revision=args.revision)
    print(f"database at {_redacted(database_url())} is at revision {args.revision}")
    return 0


def _grant(args: argparse.Namespace) -> int:
    try:
        with transaction() as conn:
            grant(conn, args.role)
    except (GrantRefused, ValueError) as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    print(f"role {args.role} at {_redacted(database_url())} has the bot's grants")
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
