"""Group commit of status webhooks (bot/whatsapp/status_batches.py): many webhooks, one
transaction, on the real channel and a real SQLite and PostgreSQL database.

To make a batch form deterministically, a test holds the database's write lock on
message_statuses from another connection (as a broadcast worker's or another replica's write
would), lets one webhook start its commit and wait for the lock, queues the others behind it,
then lets go: the first commit holds one webhook, the next every webhook queued meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from bot.db import get_engine
from bot.schema import consent_events, customer_identities, message_statuses, tags
from bot.whatsapp import inbox
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.inbound import StatusUpdate, parse_webhook
from bot.whatsapp.status_batches import StatusWriter, in_lock_order, next_batch
from tests.whatsapp_app import make_app, post

CUSTOMER = "16505551234"
BSUID = "US.13491208655302741918"


@pytest.fixture
def app(db_url, fake_graph):
    app, _ = make_app(fake_graph.api_url)
    return app


def writer_of(app) -> StatusWriter:
    return app.ctx.whatsapp.statuses


def count(table, *where) -> int:
    with get_engine().connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@contextmanager
def status_writes_held() -> Iterator[None]:
    """Hold the write lock message_statuses needs, from another connection, until the block ends."""
    engine = get_engine()
    if engine.dialect.name == "sqlite":
        # SQLite has one write lock for the file; the writer waits for it in its busy timeout (10 s).
        holder = sqlite3.connect(engine.url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(text("LOCK TABLE message_statuses IN SHARE ROW EXCLUSIVE MODE"))
        try:
            yield
        finally:
            transaction.rollback()


async def until(condition: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def in_one_batch(app, payloads: Sequence[dict]) -> tuple[int, list[int]]:
    """Post a first webhook, then `payloads` while its commit waits for the lock: the answers of
    the first and of the batch that follows it."""
    writer = writer_of(app)
    with status_writes_held():
        first = asyncio.create_task(post(app, meta.status("wamid.FIRST", CUSTOMER, "sent")))
        await until(lambda: writer.writing == 1)
        rest = [asyncio.create_task(post(app, p)) for p in payloads]
        await until(lambda: writer.queued == len(payloads))
    answers = await asyncio.gather(first, *rest)
    return answers[0].status, [a.status for a in answers[1:]]


async def test_concurrent_status_webhooks_are_committed_in_one_transaction(app):
    writer = writer_of(app)
    # A dozen: each ASGI test request restarts the app's router, slow on a loaded machine, and
    # the first webhook's commit must not outwait SQLite's busy timeout (10 s) meanwhile.
    payloads = [meta.status(f"wamid.B{n}", CUSTOMER, "delivered") for n in range(12)]
    first, answers = await in_one_batch(app, payloads)
    assert first == 200
    assert answers == [200] * 12
    assert writer.commits == 2  # the first webhook alone, then the 12 queued behind it together
    assert count(message_statuses, message_statuses.c.wamid.like("wamid.B%")) == 12


@pytest.fixture
def failing_insert(db_url) -> Iterator[Callable[[], None]]:
    """A database that refuses the status row of wamid.POISON mid-transaction (a trigger);
    calling the fixture's value lifts the refusal."""
    postgres = db_url.startswith("postgresql")
    with get_engine().begin() as conn:
        if postgres:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.wamid = 'wamid.POISON' THEN RAISE EXCEPTION 'simulated failure'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON message_statuses "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON message_statuses "
                    "WHEN NEW.wamid = 'wamid.POISON' BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"
                )
            )

    def lift() -> None:
        with get_engine().begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_poison" + (" ON message_statuses" if postgres else "")))

    yield lift


async def test_a_webhook_the_database_refuses_fails_alone_and_the_writer_goes_on(app, failing_insert):
    good = [meta.status(f"wamid.G{n}", CUSTOMER, "read") for n in range(6)]
    poison = meta.status("wamid.POISON", CUSTOMER, "sent")
    first, answers = await in_one_batch(app, [*good[:3], poison, *good[3:]])
    assert first == 200
    # The batch's transaction failed on one row: the others, committed one by one, answer 200;
    # the refused one answers 500 and WhatsApp retries it.
    assert answers == [200, 200, 200, 500, 200, 200, 200]
    assert count(message_statuses, message_statuses.c.wamid.like("wamid.G%")) == 6
    assert inbox.status_of("wamid.POISON") is None
    # The writer lives on: the next batch is recorded, and the retry once the database accepts it.
    assert (await post(app, meta.status("wamid.NEXT", CUSTOMER, "sent"))).status == 200
    assert inbox.status_of("wamid.NEXT")["status"] == "sent"
    failing_insert()
    assert (await post(app, poison)).status == 200
    assert inbox.status_of("wamid.POISON")["status"] == "sent"


async def test_an_unavailable_database_fails_the_whole_batch_at_once():
    attempts: list[int] = []

    def commit(batch: Sequence[StatusUpdate]) -> None:
        attempts.append(len(batch))
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))

    writer = StatusWriter(commit)
    first = asyncio.create_task(writer.record(statuses(1)))
    queued = [asyncio.create_task(writer.record(statuses(1))) for _ in range(4)]
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    assert all(isinstance(r, OperationalError) for r in results)
    # One or two transactions (the first alone or not), never one per webhook after them.
    assert sum(attempts) == 5 and len(attempts) <= 2
    await writer.close()


async def test_replayed_statuses_do_not_count_twice(app):
    # Sent to a phone number, the statuses carry the BSUID too: the link is recorded once.
    delivered = meta.status("wamid.R1", CUSTOMER, "delivered", recipient_user_id=BSUID)
    opted_out = meta.status("wamid.R2", CUSTOMER, "failed", error_code=131050)
    first, answers = await in_one_batch(app, [delivered, delivered, opted_out, opted_out, delivered])
    assert first == 200 and answers == [200] * 5
    # ... and WhatsApp retries them once more, in a later batch.
    assert [(await post(app, p)).status for p in (delivered, opted_out)] == [200, 200]
    assert count(message_statuses, message_statuses.c.wamid.in_(["wamid.R1", "wamid.R2"])) == 2
    assert inbox.status_of("wamid.R1")["status"] == "delivered"
    assert count(customer_identities, customer_identities.c.value.in_([CUSTOMER, BSUID])) == 2
    assert count(tags, tags.c.name == "OPT_OUT") == 1
    assert count(consent_events, consent_events.c.source == "meta_131050") == 1


async def test_out_of_order_statuses_in_one_batch_end_in_the_latest_state(app):
    def of(wamid: str, *order: str) -> list[dict]:
        stamps = {"sent": 1_700_000_000, "delivered": 1_700_000_010, "read": 1_700_000_020}
        return [meta.status(wamid, CUSTOMER, s, timestamp=stamps[s]) for s in order]

    batch = [
        *of("wamid.O1", "read", "sent", "delivered"),
        *of("wamid.O2", "delivered", "read", "sent"),
        *of("wamid.O3", "sent", "delivered", "read"),
        *of("wamid.O4", "delivered", "sent"),
    ]
    first, answers = await in_one_batch(app, batch)
    assert first == 200 and answers == [200] * len(batch)
    assert [inbox.status_of(f"wamid.O{n}")["status"] for n in (1, 2, 3, 4)] == [
        "read",
        "read",
        "read",
        "delivered",
    ]


def test_one_row_per_message_holds_its_furthest_status_and_its_first_callback_data():
    def update(wamid: str, status: str, callback: str | None = None) -> StatusUpdate:
        payload = meta.status(wamid, CUSTOMER, status, callback_data=callback)
        return parse_webhook(payload).statuses[0]

    rows = inbox.forward_most(
        [
            update("wamid.F1", "delivered", "b-1"),
            update("wamid.F2", "sent"),
            update("wamid.F3", "no-such-status"),  # unknown: not stored
            update("wamid.F1", "read", "b-2"),
            update("wamid.F1", "sent"),
        ]
    )
    assert [(r["wamid"], r["status"], r["callback_data"]) for r in rows] == [
        ("wamid.F1", "read", "b-1"),
        ("wamid.F2", "sent", None),
    ]


# --- the writer itself, with a commit function of the test's own ---


def statuses(n: int) -> list[StatusUpdate]:
    return [parse_webhook(meta.status(f"wamid.U{i}", CUSTOMER, "sent")).statuses[0] for i in range(n)]


def test_a_batch_takes_whole_webhooks_up_to_the_cap():
    waiters = [type("W", (), {"statuses": statuses(n)})() for n in (100, 150, 100, 400)]
    assert next_batch(waiters, 300) == 2  # 250; a third would make 350
    assert next_batch(waiters[3:], 300) == 1  # larger than the cap: alone
    assert next_batch(waiters[2:], 300) == 1
    assert next_batch([], 300) == 0


def test_a_batch_is_written_in_message_order_keeping_each_messages_own_order():
    arrived = [
        status
        for wamid, status_ in [
            ("wamid.B", "read"),
            ("wamid.A", "sent"),
            ("wamid.B", "sent"),
            ("wamid.A", "read"),
        ]
        for status in parse_webhook(meta.status(wamid, CUSTOMER, status_)).statuses
    ]
    assert [(s.message_id, s.status.name) for s in in_lock_order(arrived)] == [
        ("wamid.A", "SENT"),
        ("wamid.A", "READ"),
        ("wamid.B", "READ"),
        ("wamid.B", "SENT"),
    ]


def test_the_bot_and_the_broadcast_worker_open_sqlite_in_wal_mode_with_a_busy_timeout(sqlite_url):
    # Both open the database through bot.db (bot/broadcast/worker.py: bot.db.transaction).
    with get_engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


async def test_a_failed_commit_does_not_stop_the_writer_and_close_commits_what_is_queued():
    committed: list[int] = []
    failures = [RuntimeError("database down")]

    def commit(batch: Sequence[StatusUpdate]) -> None:
        if failures:
            raise failures.pop()
        committed.append(len(batch))

    writer = StatusWriter(commit)
    with pytest.raises(RuntimeError, match="database down"):
        await writer.record(statuses(2))
    await writer.record(statuses(3))
    assert committed == [3]
    queued = [asyncio.create_task(writer.record(statuses(1))) for _ in range(5)]
    await asyncio.sleep(0)  # all five are queued
    await writer.close()
    await asyncio.gather(*queued)  # every one committed before the writer ended
    assert sum(committed) == 8
    # A server started again in the same process gets a writer again.
    await writer.record(statuses(1))
    assert sum(committed) == 9
    await writer.close()
