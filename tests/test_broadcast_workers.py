"""Broadcast workers as they run in production: `python -m bot broadcast worker` processes on a
real SQLite file or a real PostgreSQL, sending to the local Graph API stand-in.

Each test counts what reached the stand-in, per customer: exactly once for everyone who may get
marketing, never for the opted out or those with an opt-out request open at their turn.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bot import PROJECT_ROOT
from bot.broadcast import deliveries, rate
from bot.broadcast.audience import Audience
from bot.broadcast.sending import Ready, last_look
from bot.db import transaction
from bot.fake_graph_api import FakeGraphServer, ScriptedFailure
from bot.schema import broadcast_deliveries
from bot.store.customers import ensure_customer
from bot.store.identities import resolve
from bot.store.opt_out_requests import request_opt_out
from bot.store.tags import record_opt_out
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp import signals
from bot.whatsapp.inbound import parse_webhook

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
PHONE_NUMBER_ID = "106540352242922"
FIRST = 4916000000000

pytestmark = pytest.mark.servers  # worker processes


@pytest.fixture
def store(db_url: str) -> str:
    """A migrated SQLite file or PostgreSQL database the workers share."""
    return db_url


def audience(count: int, opted_out=(), requested=()) -> list[str]:
    """`count` customers in broadcast b-1 (rate unlimited); the `opted_out` and `requested`
    positions opt out / ask to stop *after* the selection, so their deliveries are pending."""
    numbers = [str(FIRST + i) for i in range(count)]
    with transaction() as conn:
        for number in numbers:
            ensure_customer(conn, number)
        deliveries.create(conn, "b-1", "promo_offer", "en_US", ["x"], Audience(), rate.UNLIMITED, count, AT)
        for i in opted_out:
            record_opt_out(conn, numbers[i], "meta_preferences", None, AT)
        for i in requested:
            request_opt_out(conn, numbers[i], "text", f"wamid.stop{i}", AT)
    return numbers


def worker(url: str, graph: FakeGraphServer, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "WHATSAPP_ACCESS_TOKEN": graph.state.token,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_API_URL": graph.api_url,
        "OPT_OUT_LINK_SECRET": "tests-link-secret",
    }
    command = [sys.executable, "-m", "bot", "broadcast", "worker", "--id", "b-1", "--until-done", *extra]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0, err


def received(graph: FakeGraphServer) -> Counter[str]:
    return Counter(m["body"]["to"] for m in graph.state.sent if m["body"]["type"] == "template")


def states() -> Counter[str]:
    with transaction() as conn:
        return deliveries.state_counts(conn, "b-1")


def test_two_workers_reach_every_customer_exactly_once(store, fake_graph):
    numbers = audience(400)
    first, second = worker(store, fake_graph), worker(store, fake_graph)
    finish(first)
    finish(second)
    assert received(fake_graph) == Counter(numbers)
    assert states() == Counter({"sent": 400})
    with transaction() as conn:
        wamids = conn.execute(select(broadcast_deliveries.c.wamid)).scalars().all()
    assert sorted(wamids) == sorted(m["id"] for m in fake_graph.state.sent)


def test_opted_out_and_deciding_customers_are_never_sent_to(store, fake_graph):
    numbers = audience(120, opted_out=range(0, 120, 10), requested=range(5, 120, 10))
    never = {numbers[i] for i in [*range(0, 120, 10), *range(5, 120, 10)]}
    late = [numbers[i] for i in range(3, 120, 10)]  # opt out while the workers run
    with transaction() as conn:
        deliveries.set_rate(conn, "b-1", 40.0)  # 3 s for the lot: time to opt out meanwhile
    first, second = worker(store, fake_graph, "--lanes", "1"), worker(store, fake_graph, "--lanes", "1")
    while len(fake_graph.state.sent) < 10:
        assert first.poll() is None and second.poll() is None
        time.sleep(0.02)
    for number in late:
        with transaction() as conn:
            record_opt_out(conn, number, "meta_preferences", None, AT)
    finish(first)
    finish(second)
    got = received(fake_graph)
    assert not never & set(got)
    assert set(got.values()) == {1}
    # A late customer got the message only if consent was asked (and given) before their opt-out.
    with transaction() as conn:
        for number in late:
            state = conn.execute(
                select(broadcast_deliveries.c.state).where(
                    broadcast_deliveries.c.customer_id == resolve(conn, number).id
                )
            ).scalar_one()
            assert (state, got[number]) in {("sent", 1), ("skipped_opted_out", 0)}
    assert 0 < sum(got[number] for number in late) < len(late)  # some before, some after: it ran
    assert set(got) | never | set(late) == set(numbers)
    counts = states()
    assert counts["sent"] == len(got) and counts["skipped_opted_out"] == 120 - len(got)


def test_a_worker_killed_mid_run_leaves_nobody_twice_and_nobody_out(store, fake_graph):
    numbers = audience(300)
    fake_graph.state.sent.clear()
    hold(fake_graph, True)
    doomed = worker(store, fake_graph, "--lanes", "2")
    # Two lanes, unlimited rate: two batches of 50 go out and wait for answers that never come.
    while len(fake_graph.state.sent) < 100:
        assert doomed.poll() is None, doomed.stderr.read() if doomed.stderr else ""
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    hold(fake_graph, False)
    assert states() == Counter({"sending": 100, "pending": 200})
    # WhatsApp took those 100: their `sent` statuses arrive, with the broadcast id.
    for message in fake_graph.state.sent:
        payload = meta.status(message["id"], message["body"]["to"], "sent", callback_data="b-1")
        signals.apply(parse_webhook(payload).statuses, [])
    finish(worker(store, fake_graph, "--lease", "0"))
    assert received(fake_graph) == Counter(numbers)
    assert states() == Counter({"sent": 300})


def test_an_unanswered_send_without_a_status_is_not_resent(store, fake_graph):
    audience(60)
    hold(fake_graph, True)
    doomed = worker(store, fake_graph, "--lanes", "1")
    while len(fake_graph.state.sent) < 50:
        assert doomed.poll() is None
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    hold(fake_graph, False)
    finish(worker(store, fake_graph, "--lease", "0"))
    assert sum(received(fake_graph).values()) == 60  # 50 in doubt + the 10 never claimed
    assert states() == Counter({"sending": 50, "sent": 10})  # in doubt: reported as interrupted


def test_throttling_lowers_the_shared_rate_for_every_worker(store, fake_graph):
    numbers = audience(60)
    fake_graph.state.failures.append(ScriptedFailure(130429, 429, times=3))
    first, second = worker(store, fake_graph), worker(store, fake_graph)
    finish(first)
    finish(second)
    assert received(fake_graph) == Counter(numbers)  # the throttled ones went later, once
    with transaction() as conn:
        # From unlimited to WhatsApp's standard tier, halved (once, or again a second later), for
        # every worker of the number.
        assert rate.current_rate(conn, PHONE_NUMBER_ID, rate.UNLIMITED, time.time()) <= 40


def test_the_pair_limit_delays_that_customer_only(store, fake_graph):
    numbers = audience(20)
    busy = numbers[7]
    fake_graph.state.failures.append(ScriptedFailure(131056, 400, times=1, to=busy))
    finish(worker(store, fake_graph))
    assert received(fake_graph) == Counter(numbers)
    assert fake_graph.state.sent[-1]["body"]["to"] == busy  # after its wait, after everyone else
    with transaction() as conn:
        customer = resolve(conn, busy)
        row = conn.execute(
            select(broadcast_deliveries.c.attempts, broadcast_deliveries.c.state).where(
                broadcast_deliveries.c.customer_id == customer.id
            )
        ).one()
    assert tuple(row) == (1, "sent")
    with transaction() as conn:
        assert rate.current_rate(conn, PHONE_NUMBER_ID, rate.UNLIMITED, time.time()) == rate.UNLIMITED


def hold(graph: FakeGraphServer, on: bool) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{graph.port}/_fake/hold",
        data=json.dumps({"hold": on}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_the_last_look_stops_a_prepared_message_to_a_customer_who_opted_out_since(store):
    numbers = audience(3)
    with transaction() as conn:
        ready = [Ready(resolve(conn, n).id, n, 0, {"to": n}) for n in numbers]
        # Prepared (consent given at the claim); then the second customer opts out, the third asks to.
        record_opt_out(conn, numbers[1], "meta_preferences", None, AT)
        request_opt_out(conn, numbers[2], "text", "wamid.stop", AT)
        go, stopped = last_look(conn, ready)
    assert go == ready[:1]
    assert [(r, f.customer_id, f.state) for r, f in stopped] == [
        (ready[1], ready[1].customer_id, "skipped_opted_out"),
        (ready[2], ready[2].customer_id, "skipped_opted_out"),
    ]
