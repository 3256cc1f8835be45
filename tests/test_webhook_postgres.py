"""The webhook's dedupe, retries and opt-out signals on PostgreSQL, as in production.

tests/test_webhook.py drives the same channel on SQLite, its redelivery test on both databases.
Here the customer store and the inbox are a fresh database on the throwaway PostgreSQL server, and
"replicas" are separate Sanic apps (separate channels, separate connection pools) sharing that
database, as Rasa replicas would.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from bot.db import get_engine
from bot.schema import consent_events, customers, inbound_messages, tags
from bot.whatsapp import inbox
from bot.whatsapp import meta_payloads as meta
from tests.whatsapp_app import by, make_app, post

CUSTOMER = "16505551234"


@pytest.fixture
def app_and_agent(postgres_db_url, fake_graph):
    return make_app(fake_graph.api_url)


def count(table, *where) -> int:
    with get_engine().connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


async def test_copies_arriving_at_two_replicas_at_the_same_instant_are_processed_once(
    postgres_db_url, fake_graph
):
    replicas = [make_app(fake_graph.api_url) for _ in range(2)]
    for _, agent in replicas:
        agent.delay = 0.05
    payload = meta.text(CUSTOMER, "stop")
    responses = await asyncio.gather(*(post(replicas[n % 2][0], payload) for n in range(20)))
    assert sum(len(agent.messages) for _, agent in replicas) == 1
    statuses = [r.status for r in responses]
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 503}  # copies still in flight are asked to come back, never lost
    for app, _ in replicas:
        assert (await post(app, payload)).status == 200
    assert sum(len(agent.messages) for _, agent in replicas) == 1
    assert len(fake_graph.state.sent) == 1


async def test_failed_turn_answers_500_and_the_retry_on_the_other_replica_is_processed(
    postgres_db_url, fake_graph
):
    (first, first_agent), (second, second_agent) = (make_app(fake_graph.api_url) for _ in range(2))
    first_agent.fail_next = 1
    payload = meta.text(CUSTOMER, "yes")
    assert (await post(first, payload)).status == 500
    assert count(inbound_messages) == 0  # the claim was released: the retry will not be swallowed
    assert (await post(second, payload)).status == 200
    assert [m.text for m in second_agent.messages] == ["yes"]
    assert (await post(first, payload)).status == 200
    assert first_agent.messages == []


async def test_inbox_unavailable_answers_500_and_the_retry_after_recovery_is_processed(app_and_agent):
    app, agent = app_and_agent
    payload = meta.text(CUSTOMER, "yes")
    with get_engine().begin() as conn:
        conn.execute(text("ALTER TABLE inbound_messages RENAME TO inbound_messages_away"))
    assert (await post(app, payload)).status == 500
    assert agent.messages == []
    with get_engine().begin() as conn:
        conn.execute(text("ALTER TABLE inbound_messages_away RENAME TO inbound_messages"))
    assert (await post(app, payload)).status == 200
    assert [m.text for m in agent.messages] == ["yes"]


def test_a_claim_abandoned_by_a_dead_replica_is_taken_over_after_its_lease(postgres_db_url):
    assert inbox.claim("wamid.A", by(CUSTOMER))[0] is inbox.Claim.NEW
    assert inbox.claim("wamid.A", by(CUSTOMER))[0] is inbox.Claim.BUSY
    assert inbox.claim("wamid.A", by(CUSTOMER), lease=timedelta(0))[0] is inbox.Claim.NEW
    inbox.finish("wamid.A")
    assert inbox.claim("wamid.A", by(CUSTOMER), lease=timedelta(0))[0] is inbox.Claim.DONE


async def test_claims_from_many_threads_at_once_give_the_message_to_exactly_one(postgres_db_url):
    results = await asyncio.gather(
        *(asyncio.to_thread(inbox.claim, "wamid.B", by(CUSTOMER)) for _ in range(16))
    )
    claims = [claim for claim, _, _ in results]
    assert len({customer for _, customer, _ in results}) == 1  # one customer, whoever created it
    assert claims.count(inbox.Claim.NEW) == 1
    assert set(claims) == {inbox.Claim.NEW, inbox.Claim.BUSY}


async def test_a_redelivered_stop_preference_on_both_replicas_writes_one_opt_out(postgres_db_url, fake_graph):
    replicas = [make_app(fake_graph.api_url)[0] for _ in range(2)]
    payload = meta.marketing_preference(CUSTOMER, "stop")
    responses = await asyncio.gather(*(post(replicas[n % 2], payload) for n in range(10)))
    assert {r.status for r in responses} == {200}
    # One live customer (a replica that lost the race to create them left an empty tombstone).
    assert count(customers, customers.c.merged_into.is_(None)) == 1
    assert count(tags, tags.c.name == "OPT_OUT") == 1
    assert count(consent_events) == 1


async def test_a_stop_preference_delivered_again_later_adds_nothing(app_and_agent):
    app, _ = app_and_agent
    payload = meta.marketing_preference(CUSTOMER, "stop")
    assert (await post(app, payload)).status == 200
    assert (await post(app, payload)).status == 200
    with get_engine().connect() as conn:
        kinds = conn.execute(select(consent_events.c.kind)).scalars().all()
    assert kinds == ["opt_out"]  # not followed by an "opt_out_repeated" for the same notice


async def test_statuses_never_move_backwards(app_and_agent):
    app, _ = app_and_agent
    for status in ("delivered", "sent", "read", "delivered"):
        assert (await post(app, meta.status("wamid.OUT1", CUSTOMER, status))).status == 200
    assert inbox.status_of("wamid.OUT1")["status"] == "read"


async def test_a_forged_webhook_writes_nothing(app_and_agent):
    app, agent = app_and_agent
    body = json.dumps(meta.marketing_preference(CUSTOMER, "stop"))
    response = await post(app, json.loads(body), headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert response.status == 403
    assert (count(inbound_messages), count(customers), count(tags)) == (0, 0, 0)
    assert agent.messages == []
