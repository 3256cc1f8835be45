"""Replies in context: a reply quoting a broadcast's template reaches Rasa with the broadcast's id
(metadata and the slot `broadcast_id`), and the dashboard shows the broadcasts a customer got."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.language import ValidateSlotMappings, broadcast_update
from bot import PROJECT_ROOT
from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.broadcast.deliveries import Received
from bot.dashboard.conversation import Line, with_broadcasts
from bot.dashboard.queries import broadcasts_received
from bot.db import transaction
from bot.store.customers import ensure_customer
from bot.whatsapp import meta_payloads as meta
from tests.whatsapp_app import make_app, post

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
ADA, BO = "4915100000001", "4915100000002"


def sent_broadcast(wamid: str) -> None:
    """Broadcast b-1 to Ada (sent, with `wamid`) and Bo (pending)."""
    with transaction() as conn:
        for number in (ADA, BO):
            ensure_customer(conn, number)
        deliveries.create(conn, "b-1", "promo_offer", "en_US", [], Audience(), 80.0, 2, AT)
        deliveries.claim(conn, "b-1", ADA, AT)
        deliveries.finish(conn, "b-1", ADA, "sent", AT, wamid)


async def test_a_reply_quoting_the_template_carries_the_broadcast_id(sqlite_url, fake_graph):
    sent_broadcast("wamid.TEMPLATE1")
    app, agent = make_app(fake_graph.api_url)
    tap = meta.quick_reply(ADA, "STOP_PROMOTIONS", "Stop promotions", context_id="wamid.TEMPLATE1")
    assert (await post(app, tap)).status == 200
    quoted = meta.text(ADA, "which shoes?", context_id="wamid.TEMPLATE1")
    assert (await post(app, quoted)).status == 200
    other = meta.text(ADA, "hello", context_id="wamid.SOMETHING_ELSE")
    assert (await post(app, other)).status == 200
    plain = meta.text(BO, "hi")
    assert (await post(app, plain)).status == 200
    assert [m.metadata["broadcast_id"] for m in agent.messages] == ["b-1", "b-1", None, None]


def test_the_slot_follows_the_metadata_and_keeps_its_value_otherwise():
    assert broadcast_update({"metadata": {"broadcast_id": "b-1"}}) == {"broadcast_id": "b-1"}
    assert broadcast_update({"metadata": {"broadcast_id": None}}) == {}
    assert broadcast_update({"text": "hi"}) == {}


def test_the_conversation_view_puts_broadcasts_between_rasas_events(sqlite_url):
    sent_broadcast("wamid.TEMPLATE2")
    with transaction() as conn:
        received = broadcasts_received(conn, ADA)
        assert broadcasts_received(conn, BO) == []
    [item] = received
    assert (item.broadcast_id, item.template, item.wamid, item.status) == (
        "b-1",
        "promo_offer",
        "wamid.TEMPLATE2",
        None,
    )
    before = Line(item.sent_at - timedelta(minutes=1), "customer", "hi", "")
    after = Line(item.sent_at + timedelta(minutes=1), "customer", "stop", "")
    lines = with_broadcasts([before, after], received)
    assert [line.text for line in lines] == ["hi", "Broadcast b-1: template promo_offer", "stop"]
    assert lines[1].detail == "broadcast message, sent"
    read = Received("b-2", "promo_offer", "wamid.X", AT, "read")
    assert with_broadcasts([], [read])[0].detail == "broadcast message, read"


async def test_action_validate_slot_mappings_sets_the_slot_from_the_metadata(sqlite_url):
    """rasa-sdk's own ValidationAction run, with the slots as domain.yml declares them (it also
    remembers the language it detects: in a test database, not the developer's var/)."""
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    latest = {"text": "which shoes?", "metadata": {"broadcast_id": "b-1"}, "intent": {}, "entities": []}
    tracker = Tracker("c_1", {}, latest, [], False, None, {}, "action_listen")
    events = await ValidateSlotMappings().run(CollectingDispatcher(), tracker, domain)
    assert SlotSet("broadcast_id", "b-1") in events
