"""Customers' conversations in Rasa's SQL tracker store (TRACKER_STORE_URL), as an erasure deletes them.

Rasa keeps every message of a conversation, the customer's words included, as rows of its table
`events` keyed by the sender id, which is our customer key (bot/store/identities.py). The tracker
store may be another database than the customer store, so this runs in its own transaction; the
erasure deletes the conversations first and again after anonymising the customer (a message that
arrived in between is caught by the second sweep), so that no failure leaves words behind a
customer the store can no longer find.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from bot.db import engine_for
from bot.grants import TRACKER_EVENTS


def tracker_url(environ: Mapping[str, str] | None = None) -> str:
    # Imported here: Rasa is heavy, and only the erasure needs its default.
    from bot.rasa_stores import tracker_store_url

    return tracker_store_url(os.environ if environ is None else environ)


def delete_conversations(url: str, keys: Sequence[str]) -> int:
    """Delete the conversations of these sender ids; how many rows went (0 when Rasa never created
    its table there)."""
    engine = engine_for(url)
    if not keys or not sa.inspect(engine).has_table(TRACKER_EVENTS):
        return 0
    events = sa.Table(TRACKER_EVENTS, sa.MetaData(), sa.Column("sender_id", sa.String(255)))
    with engine.begin() as conn:
        return conn.execute(sa.delete(events).where(events.c.sender_id.in_(list(keys)))).rowcount
