"""Marketing playbooks in-process: one consent guard in front of every marketing action."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import text

import actions.marketing
from actions.marketing import ActionAbandonedCartReminder, MarketingAction
from bot.db import get_engine, transaction
from bot.store.customers import ensure_customer
from bot.store.tags import record_opt_out

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
SUBSCRIBED, OPTED_OUT = "4915100000001", "4915100000002"


@pytest.fixture
def customers(sqlite_url) -> None:
    with transaction() as conn:
        ensure_customer(conn, SUBSCRIBED)
        record_opt_out(conn, OPTED_OUT, "text", None, AT)


async def remind(wa_id: str, active_loop: str | None = None, **entities: str) -> tuple[list, list]:
    latest = {
        "intent": {"name": "EXTERNAL_abandoned_cart", "confidence": 1.0},
        "entities": [{"entity": name, "value": value} for name, value in entities.items()],
    }
    dispatcher = CollectingDispatcher()
    loop = {"name": active_loop} if active_loop else {}
    tracker = Tracker(wa_id, {}, latest, [], False, None, loop, "action_listen")
    events = await ActionAbandonedCartReminder().run(dispatcher, tracker, {})
    return events, dispatcher.messages


async def test_a_subscribed_customer_gets_the_reminder_with_their_cart(customers):
    events, messages = await remind(SUBSCRIBED, cart_items="2 pairs of shoes")
    assert events == []
    [message] = messages
    assert message["response"] == "utter_abandoned_cart"
    assert message["cart_items"] == "2 pairs of shoes"


async def test_without_cart_items_the_reminder_still_reads_well(customers):
    _, [message] = await remind(SUBSCRIBED)
    assert message["cart_items"] == "some items"


async def test_an_opted_out_customer_gets_nothing_and_the_conversation_says_why(customers):
    events, messages = await remind(OPTED_OUT, cart_items="shoes")
    assert messages == []
    assert events == [SlotSet("marketing_suppressed", "abandoned_cart: customer opted out")]


async def test_a_customer_confirming_an_opt_out_gets_nothing(customers):
    events, messages = await remind(SUBSCRIBED, "opt_out_form")
    assert messages == []
    assert events == [SlotSet("marketing_suppressed", "abandoned_cart: customer is confirming an opt-out")]


async def test_when_consent_cannot_be_checked_nothing_is_sent(customers):
    with get_engine().begin() as conn:
        conn.execute(text("ALTER TABLE tags RENAME TO tags_away"))
    try:
        events, messages = await remind(SUBSCRIBED)
    finally:
        with get_engine().begin() as conn:
            conn.execute(text("ALTER TABLE tags_away RENAME TO tags"))
    assert messages == []
    assert events == [SlotSet("marketing_suppressed", "abandoned_cart: consent could not be checked")]


def test_every_marketing_action_goes_through_the_one_guard():
    playbooks = [
        cls
        for _, cls in inspect.getmembers(actions.marketing, inspect.isclass)
        if issubclass(cls, MarketingAction) and cls is not MarketingAction
    ]
    assert playbooks == [ActionAbandonedCartReminder]
    for playbook in playbooks:
        assert playbook.run is MarketingAction.run, f"{playbook.__name__} overrides the consent guard"
        assert playbook.playbook
