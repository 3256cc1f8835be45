"""action_send_broadcast in-process, against the local fake Graph API: at most once, consent asked
at the moment of sending, and each WhatsApp refusal recorded as it should be."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

import actions.broadcast
from actions.broadcast import ActionSendBroadcast
from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.db import get_engine, transaction
from bot.fake_graph_api import ScriptedFailure
from bot.schema import broadcast_deliveries
from bot.store.customers import ensure_customer, profile
from bot.store.identities import resolve
from bot.store.tags import record_opt_out
from bot.whatsapp.cloud_api import CloudApiClient, RetryPolicy

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
ADA, BO = "4915100000001", "4915100000002"


@pytest.fixture
async def client(fake_graph, monkeypatch):
    client = CloudApiClient(
        fake_graph.api_url, "106540352242922", "test-access-token", retry=RetryPolicy(3, 0.01, 0.02)
    )
    monkeypatch.setattr(actions.broadcast, "cloud_api", lambda: client)
    yield client
    await client.close()


@pytest.fixture
def broadcast(sqlite_url) -> str:
    """Broadcast b-1 of promo_offer to Ada and Bo, both pending."""
    with transaction() as conn:
        for wa_id in (ADA, BO):
            ensure_customer(conn, wa_id)
        deliveries.create(conn, "b-1", "promo_offer", "en_US", ["20% off"], Audience(), 80.0, 2, AT)
    return "b-1"


def tracker(wa_id: str, active_loop: str | None = None, **entities: str) -> Tracker:
    latest = {
        "intent": {"name": "EXTERNAL_send_broadcast", "confidence": 1.0},
        "entities": [{"entity": name, "value": value} for name, value in entities.items()],
        "text": "EXTERNAL_send_broadcast",
    }
    loop = {"name": active_loop} if active_loop else {}
    return Tracker(wa_id, {}, latest, [], False, None, loop, "action_listen")


async def run(wa_id: str, **entities: str) -> list:
    """The action's events, less the FollowupAction("action_listen") it ends with."""
    events = await ActionSendBroadcast().run(CollectingDispatcher(), tracker(wa_id, **entities), {})
    assert events[-1] == FollowupAction("action_listen")
    return events[:-1]


def delivery(wa_id: str) -> tuple:
    with transaction() as conn:
        row = conn.execute(
            select(
                broadcast_deliveries.c.state,
                broadcast_deliveries.c.wamid,
                broadcast_deliveries.c.error_code,
            ).where(broadcast_deliveries.c.customer_id == resolve(conn, wa_id).id)
        ).one()
    return tuple(row)


async def test_the_template_is_sent_once_with_the_stop_payload_and_the_broadcast_id(
    broadcast, client, fake_graph
):
    assert await run(ADA, broadcast_id=broadcast) == [SlotSet("last_broadcast", "promo_offer")]
    [message] = fake_graph.state.sent
    body = message["body"]
    assert body["to"] == ADA and body["type"] == "template"
    assert body["template"]["name"] == "promo_offer"
    assert body["template"]["components"][0]["parameters"] == [{"type": "text", "text": "20% off"}]
    assert body["template"]["components"][1]["parameters"] == [
        {"type": "payload", "payload": "STOP_PROMOTIONS"}
    ]
    assert body["biz_opaque_callback_data"] == "b-1"
    assert delivery(ADA) == ("sent", message["id"], None)

    assert await run(ADA, broadcast_id=broadcast) == []  # a second trigger sends nothing
    assert len(fake_graph.state.sent) == 1


async def test_a_customer_who_opted_out_after_the_selection_is_skipped(broadcast, client, fake_graph):
    with transaction() as conn:
        record_opt_out(conn, BO, "meta_preferences", None, AT)
    assert await run(BO, broadcast_id=broadcast) == []
    assert fake_graph.state.attempts == 0
    assert delivery(BO) == ("skipped_opted_out", None, None)


async def test_a_customer_confirming_an_opt_out_is_deferred_not_sent(broadcast, client, fake_graph):
    dispatcher = CollectingDispatcher()
    events = await ActionSendBroadcast().run(
        dispatcher, tracker(ADA, "opt_out_form", broadcast_id=broadcast), {}
    )
    assert events == []  # no FollowupAction: the rule goes back to the open question
    assert fake_graph.state.attempts == 0
    assert delivery(ADA)[0] == "pending"  # a later run sends or skips it once they answered


@pytest.mark.parametrize(
    "entities", [{}, {"broadcast_id": "b-unknown"}, {"cart_items": "b-1"}], ids=["none", "unknown", "other"]
)
async def test_without_a_known_broadcast_id_nothing_happens(broadcast, client, fake_graph, entities):
    assert await run(ADA, **entities) == []
    assert fake_graph.state.attempts == 0
    assert delivery(ADA)[0] == "pending"


async def test_a_customer_outside_the_audience_gets_nothing(broadcast, client, fake_graph):
    assert await run("4915100000099", broadcast_id=broadcast) == []
    assert fake_graph.state.attempts == 0


async def test_a_delivery_left_in_sending_by_a_crash_is_never_sent_again(broadcast, client, fake_graph):
    with transaction() as conn:
        conn.execute(
            update(broadcast_deliveries)
            .where(broadcast_deliveries.c.customer_id == resolve(conn, ADA).id)
            .values(state="sending")
        )
    assert await run(ADA, broadcast_id=broadcast) == []
    assert fake_graph.state.attempts == 0


async def test_131050_records_the_opt_out_and_fails_the_delivery_without_a_retry(
    broadcast, client, fake_graph
):
    fake_graph.state.failures.append(ScriptedFailure(131050, 400, times=5, to=ADA))
    assert await run(ADA, broadcast_id=broadcast) == []
    assert fake_graph.state.attempts == 1
    assert delivery(ADA) == ("failed", None, 131050)
    with transaction() as conn:
        found = profile(conn, ADA)
    assert found is not None and not found["marketing_allowed"]
    assert found["tags"][0]["source"] == "meta_131050"


@pytest.mark.parametrize("code", [131026, 131047, 132001])
async def test_permanent_refusals_fail_the_delivery_with_their_code(broadcast, client, fake_graph, code):
    fake_graph.state.failures.append(ScriptedFailure(code, 400, times=5))
    assert await run(ADA, broadcast_id=broadcast) == []
    assert fake_graph.state.attempts == 1
    assert delivery(ADA) == ("failed", None, code)
    with transaction() as conn:
        assert profile(conn, ADA)["marketing_allowed"]


async def test_throttling_to_the_end_hands_the_delivery_back_unsent(broadcast, client, fake_graph):
    fake_graph.state.failures.append(ScriptedFailure(130429, 400, times=10))
    assert await run(ADA, broadcast_id=broadcast) == []
    assert fake_graph.state.attempts == 3  # the client's retries with backoff
    assert delivery(ADA) == ("pending", None, 130429)


async def test_a_send_that_may_have_gone_out_is_never_retried(broadcast, client, fake_graph):
    fake_graph.state.failures.append(ScriptedFailure(1, 500, times=10))
    assert await run(ADA, broadcast_id=broadcast) == []
    assert delivery(ADA)[0] == "failed"


async def test_without_whatsapp_credentials_the_delivery_stays_pending(broadcast, fake_graph, monkeypatch):
    monkeypatch.setattr(actions.broadcast, "cloud_api", lambda: None)
    assert await run(ADA, broadcast_id=broadcast) == []
    assert delivery(ADA)[0] == "pending"


async def test_a_database_failure_fails_the_action_and_sends_nothing(broadcast, client, fake_graph):
    with get_engine().begin() as conn:
        conn.execute(text("ALTER TABLE tags RENAME TO tags_away"))  # the consent check fails
    try:
        assert await run(ADA, broadcast_id=broadcast) == []
    finally:
        with get_engine().begin() as conn:
            conn.execute(text("ALTER TABLE tags_away RENAME TO tags"))
    assert fake_graph.state.attempts == 0
    assert delivery(ADA)[0] == "pending"  # the claim was rolled back with the failed check


async def test_a_send_whose_outcome_cannot_be_saved_is_never_sent_again(
    broadcast, client, fake_graph, monkeypatch
):
    real_finish_many = deliveries.finish_many

    def finish_fails_after_sending(conn, broadcast_id, finished, at):
        if any(item.state == "sent" for item in finished):
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        return real_finish_many(conn, broadcast_id, finished, at)

    monkeypatch.setattr(deliveries, "finish_many", finish_fails_after_sending)
    assert await run(ADA, broadcast_id=broadcast) == []
    assert delivery(ADA)[0] == "sending"  # reported as interrupted
    assert await run(ADA, broadcast_id=broadcast) == []
    assert len(fake_graph.state.sent) == 1


def test_the_credentials_come_from_the_same_environment_as_the_rasa_server(monkeypatch, fake_graph):
    actions.broadcast.cloud_api.cache_clear()
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", "token")
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", "123")
    monkeypatch.setenv("WHATSAPP_API_URL", fake_graph.api_url)
    try:
        client = actions.broadcast.cloud_api()
        assert client is not None and client.messages_url == f"{fake_graph.api_url}/123/messages"
    finally:
        actions.broadcast.cloud_api.cache_clear()
