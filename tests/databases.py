"""Databases at an older revision, for the migration tests."""

from __future__ import annotations

from collections.abc import Iterable

from alembic import command
from sqlalchemy import text

from bot.db import engine_for
from bot.migrations import alembic_config


def at_revision(url: str, revision: str, statements: Iterable[str], last_customer_id: int = 0) -> str:
    """Migrate `url` to `revision` and run `statements` (rows of that revision's tables). Rows that
    chose their customer ids leave PostgreSQL's sequence behind: `last_customer_id` moves it on."""
    command.upgrade(alembic_config(url), revision)
    with engine_for(url).begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
        if last_customer_id and url.startswith("postgresql"):
            conn.execute(text(f"SELECT setval('customers_id_seq', {last_customer_id})"))
    return url
