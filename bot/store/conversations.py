"""Customers' conversations in Rasa's SQL tracker store (TRACKER_STORE_URL), as an erasure deletes them.

Rasa keeps every message of a conversation, the customer's words included, as rows of its table
`events` keyed by the sender id, which is our customer key (bot/store/identities.py). The tracker
store may be another database than the customer store, so this runs in its own transaction:
`customers forget` deletes the conversations after anonymising the customer and before
committing that (a failure here rolls the erasure back: no words are left behind a customer the
store can no longer find), and sweeps once more after it (a message that arrived in between).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.db import engine_for, scrub_deleted
from bot.grants import TRACKER_EVENTS


def tracker_url(environ: Mapping[str, str] | None = None) -> str:
    # Imported here: Rasa is heavy, and only the erasure needs its default.
    from bot.rasa_stores import tracker_store_url

    return tracker_store_url(environ)


def _events(url: str) -> sa.Table | None:
    """Rasa's table, as far as we need it; None when Rasa never created it in that database."""
    if not sa.inspect(engine_for(url)).has_table(TRACKER_EVENTS):
        return None
    return sa.Table(TRACKER_EVENTS, sa.MetaData(), sa.Column("sender_id", sa.String(255)))


def count_conversations(url: str, keys: Sequence[str]) -> int:
    """How many rows the conversations of these sender ids hold."""
    events = _events(url)
    if events is None or not keys:
        return 0
    with engine_for(url).begin() as conn:
        statement = sa.select(sa.func.count()).select_from(events).where(events.c.sender_id.in_(list(keys)))
        return conn.execute(statement).scalar_one()


def delete_conversations(url: str, keys: Sequence[str], store: Connection | None = None) -> int:
    """Delete the conversations of these sender ids; how many rows went (0 when Rasa never created
    its table there). `store`: the customer store's open transaction, used when the conversations
    live in the same database (a second connection to one SQLite file would wait for its lock)."""
    events = _events(url)
    if events is None or not keys:
        return 0
    statement = sa.delete(events).where(events.c.sender_id.in_(list(keys)))
    if store is not None and store.engine.url == engine_for(url).url:
        scrub_deleted(store)
        return store.execute(statement).rowcount
    with engine_for(url).begin() as conn:
        scrub_deleted(conn)
        return conn.execute(statement).rowcount
