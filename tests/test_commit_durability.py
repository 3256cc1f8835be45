"""Which commits wait for the disk (bot.db.engine_for's `durable`): consent always, the channel's
bookkeeping of inbound messages not (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off);
and where that bookkeeping runs (`run_soon`: on SQLite on the event loop unless the file is locked)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import event, text

from bot.db import engine_for, run_soon, transaction
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


def test_bookkeeping_runs_on_the_event_loop_on_sqlite_and_in_a_thread_when_locked_or_remote(db_url):
    """`run_soon`: on SQLite on the loop's own thread, unless another writer holds the lock (then
    in a thread that waits for it, and nothing is lost); on PostgreSQL always in a thread."""
    threads: list[str] = []

    def book(wamid: str) -> None:
        threads.append(threading.current_thread().name)
        with transaction(durable=False) as conn:
            conn.execute(
                text(
                    "INSERT INTO inbound_messages (wamid, customer_key, state, attempts, claimed_at)"
                    " VALUES (:w, 'k', 'done', 1, CURRENT_TIMESTAMP)"
                ),
                {"w": wamid},
            )

    async def scenario() -> None:
        await run_soon(book, "wamid.free")
        if not db_url.startswith("sqlite"):
            return
        # Another process's writer holds the lock for a moment: the loop must not wait for it.
        blocker = engine_for(db_url).raw_connection()
        blocker.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        attempt = asyncio.ensure_future(run_soon(book, "wamid.locked"))
        await asyncio.sleep(0.3)  # the loop is free meanwhile: this sleep ends on time
        assert time.perf_counter() - started < 0.5
        assert not attempt.done()  # waiting, in a thread, for the lock
        blocker.rollback()
        blocker.close()
        await attempt

    asyncio.run(scenario())
    with transaction() as conn:
        rows = conn.execute(text("SELECT wamid FROM inbound_messages ORDER BY wamid")).scalars().all()
    if db_url.startswith("sqlite"):
        assert rows == ["wamid.free", "wamid.locked"]
        # First on the loop's thread; the locked one tried there, then again in a worker thread.
        assert threads[:2] == ["MainThread", "MainThread"] and threads[2] != "MainThread"
    else:
        assert rows == ["wamid.free"] and threads == [threads[0]] and threads[0] != "MainThread"
