"""Which commits wait for the disk (bot.db.engine_for's `durable`): consent always, the channel's
bookkeeping of inbound messages not (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import event, text

from bot.db import engine_for, transaction
from bot.store.tags import record_opt_out
from bot.whatsapp import inbox, signals
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.inbound import parse_webhook

AT = datetime(2026, 12, 2, 14, 0, tzinfo=timezone.utc)


def commit_waits_for_disk(conn) -> bool:
    """SQLite: synchronous=FULL, its default. PostgreSQL: the server's own setting (the test server
    may run without waiting for the disk at all), not this connection's."""
    if conn.dialect.name == "sqlite":
        return conn.execute(text("PRAGMA synchronous")).scalar() == 2
    source = "SELECT source FROM pg_settings WHERE name = 'synchronous_commit'"
    return conn.execute(text(source)).scalar() != "client"


def test_only_bookkeeping_transactions_commit_without_waiting_for_the_disk(db_url):
    with transaction() as conn:
        assert commit_waits_for_disk(conn)
    with transaction(durable=False) as conn:
        assert not commit_waits_for_disk(conn)
    with transaction() as conn:  # the pools are apart: a durable connection stays durable
        assert commit_waits_for_disk(conn)


def test_the_channel_books_messages_lightly_and_writes_consent_durably(db_url):
    tables_by_engine: dict[bool, set[str]] = {True: set(), False: set()}

    def watch(durable: bool):
        def note(conn, cursor, statement, parameters, context, executemany):
            words = statement.replace('"', " ").split()
            if words and words[0] in {"INSERT", "UPDATE", "DELETE"}:
                target = words[2] if words[0] in {"INSERT", "DELETE"} else words[1]
                tables_by_engine[durable].add(target)

        return note

    listeners = {durable: watch(durable) for durable in (True, False)}
    for durable, listener in listeners.items():
        event.listen(engine_for(db_url, durable), "before_cursor_execute", listener)
    try:
        message = parse_webhook(meta.text("15550001111", "STOP")).messages[0]
        claimed = signals.claim(message)
        assert claimed.claim is inbox.Claim.NEW
        inbox.finish(message.id)
        with transaction() as conn:
            record_opt_out(conn, "15550001111", "text", message.id, AT)
    finally:
        for durable, listener in listeners.items():
            event.remove(engine_for(db_url, durable), "before_cursor_execute", listener)
    assert "inbound_messages" in tables_by_engine[False]
    assert "tags" in tables_by_engine[True] and "tags" not in tables_by_engine[False]
    assert "inbound_messages" not in tables_by_engine[True]
