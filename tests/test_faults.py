"""Faults on the production path, against the real servers: Rasa killed mid-conversation, the
database down or failing, a storm of duplicate deliveries, a broadcast killed halfway.

One bot on PostgreSQL (conversations, customers, dedupe) and Redis (locks); the PostgreSQL server
is this module's own, because a test stops it. Each test has customers of its own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import PROJECT_ROOT
from bot.db import engine_for
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import (
    CONFIRM_TITLE,
    OPTED_OUT,
    asks_for_confirmation,
    last_text,
    new_customer,
    opt_out_count,
    tracker_events,
    user_turns,
)
from tests.rasa_servers import RunningBot, start_bot_on
from tests.servers import PostgresServer, or_skip, postgres_server

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def database() -> Iterator[PostgresServer]:
    with or_skip(postgres_server()) as server:
        yield server


@pytest.fixture(scope="module")
def bot(tmp_path_factory, database, redis_server) -> Iterator[RunningBot]:
    running = start_bot_on(
        tmp_path_factory.mktemp("faults"), database.create_database(), redis_server.database_url(6)
    )
    yield running
    running.stop()


def confirm_tap(wa_id: str) -> dict:
    return meta.button_reply(wa_id, "/affirm", CONFIRM_TITLE)


def test_rasa_killed_while_the_confirmation_waits_resumes_after_a_restart(bot):
    wa_id = new_customer()
    assert bot.post(meta.text(wa_id, "STOP")) == 200
    assert asks_for_confirmation(bot, wa_id)

    bot.processes["rasa"].send_signal(signal.SIGKILL)
    bot.processes["rasa"].wait()
    bot.start_rasa()

    assert bot.post(confirm_tap(wa_id)) == 200
    assert OPTED_OUT in last_text(bot, wa_id)
    assert opt_out_count(bot, wa_id) == (1, 1)
    assert user_turns(tracker_events(bot, wa_id)) == ["STOP", "/affirm"]


def test_database_down_when_the_confirmation_arrives_then_whatsapps_retry_writes_the_tag_once(bot, database):
    wa_id = new_customer()
    assert bot.post(meta.text(wa_id, "STOP")) == 200
    assert asks_for_confirmation(bot, wa_id)
    answered = len(bot.sent_to(wa_id))

    database.stop()
    try:
        assert bot.post(confirm_tap(wa_id)) in (500, 503)
    finally:
        database.start()
    assert len(bot.sent_to(wa_id)) == answered
    assert opt_out_count(bot, wa_id) == (0, 0)

    assert bot.post(confirm_tap(wa_id)) == 200  # WhatsApp's retry: the same payload
    assert OPTED_OUT in last_text(bot, wa_id)
    assert opt_out_count(bot, wa_id) == (1, 1)
    assert bot.post(confirm_tap(wa_id)) == 200  # and once more: acknowledged, nothing new
    assert opt_out_count(bot, wa_id) == (1, 1)


def test_a_failing_tracker_store_fails_the_webhook_instead_of_answering_from_an_empty_conversation(bot):
    # Rasa itself would read an empty conversation and answer the tap out of context with 200
    # (bot/rasa_stores.py); the inbox still works, so only the tracker store fails here.
    wa_id = new_customer()
    assert bot.post(meta.text(wa_id, "STOP")) == 200
    assert asks_for_confirmation(bot, wa_id)
    answered = len(bot.sent_to(wa_id))
    engine = engine_for(bot.database_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE events RENAME TO events_away"))
    try:
        assert bot.post(confirm_tap(wa_id)) == 500
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE events_away RENAME TO events"))
    assert len(bot.sent_to(wa_id)) == answered  # no answer from an empty conversation

    assert bot.post(confirm_tap(wa_id)) == 200
    assert OPTED_OUT in last_text(bot, wa_id)
    assert opt_out_count(bot, wa_id) == (1, 1)


def test_the_same_webhook_delivered_50_times_at_once_is_processed_once(bot):
    wa_id = new_customer()
    payload = meta.text(wa_id, "hello")
    with ThreadPoolExecutor(50) as pool:
        statuses = Counter(pool.map(lambda _: bot.post(payload), range(50)))
    # The copy that did the work says 200; copies still in flight are asked to come back (503).
    assert statuses[200] >= 1
    assert set(statuses) <= {200, 503}
    assert bot.post(payload) == 200  # a redelivery after the turn: acknowledged
    assert user_turns(tracker_events(bot, wa_id)) == ["hello"]
    assert len(bot.sent_to(wa_id)) == 1


# --- a broadcast killed halfway (`python -m bot broadcast`, bot/broadcast/) ---


def import_customers(bot: RunningBot, tmp_path: Path, tag: str, numbers: list[str]) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("wa_id,name,tags\n" + "".join(f"{n},Customer,{tag}\n" for n in numbers))
    result = bot.cli("customers", "import", str(path))
    assert result.returncode == 0, result.stderr


def broadcast(broadcast_id: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bot", "broadcast", "--template", "promo_offer", "--language", "en_US",
        "--param", "20% off shoes", "--tag", "FAULT_BROADCAST", "--id", broadcast_id, *extra,
    ]  # fmt: skip


def templates_sent(bot: RunningBot, numbers: list[str]) -> Counter[str]:
    wanted = set(numbers)
    return Counter(
        m["body"]["to"]
        for m in bot.graph.state.sent
        if m["body"]["to"] in wanted and m["body"]["type"] == "template"
    )


def test_a_broadcast_killed_halfway_and_resumed_reaches_nobody_twice(bot, tmp_path):
    numbers = [str(4915300000001 + i) for i in range(20)]
    import_customers(bot, tmp_path, "FAULT_BROADCAST", numbers)
    slow = subprocess.Popen(
        broadcast("fault-resume", "--rate", "4", "--concurrency", "2"),
        cwd=PROJECT_ROOT,
        env=bot.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while sum(templates_sent(bot, numbers).values()) < 6:
            assert slow.poll() is None, "the broadcast finished before it could be killed"
            assert time.monotonic() < deadline, "the broadcast sent nothing"
            time.sleep(0.05)
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    before = templates_sent(bot, numbers)
    assert len(before) < len(numbers)

    resumed = subprocess.run(
        broadcast("fault-resume"), cwd=PROJECT_ROOT, env=bot.env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    after = templates_sent(bot, numbers)
    assert max(after.values()) == 1  # nobody twice
    # Everyone was reached, except a send in flight when the command died: never retried, so
    # that an uncertain send cannot become a second one.
    assert len(after) >= len(numbers) - 2
    assert set(before) <= set(after)
