"""Two Rasa replicas behind one webhook address: shared PostgreSQL (conversations, customers,
dedupe) and Redis (per-conversation locks), one action server, WhatsApp delivering to either."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import (
    CONFIRM_TITLE,
    OPTED_OUT,
    asks_for_confirmation,
    last_text,
    new_customer,
    opt_out_count,
    reply_text,
    tracker_events,
    user_turns,
)
from tests.rasa_servers import RunningBot, start_bot_on

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres_server, redis_server) -> Iterator[tuple[RunningBot, RunningBot]]:
    first = start_bot_on(
        tmp_path_factory.mktemp("replica-a"), postgres_server.create_database(), redis_server.database_url(5)
    )
    try:
        second = first.start_replica(tmp_path_factory.mktemp("replica-b"))
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def slot_values(events: list[dict[str, Any]], slot: str) -> list[Any]:
    return [event["value"] for event in events if event["event"] == "slot" and event["name"] == slot]


def whole_turns(events: list[dict[str, Any]]) -> bool:
    """Every user message arrived while the bot was listening: no turn ran into another."""
    last_action = None
    for event in events:
        if event["event"] == "user" and last_action != "action_listen":
            return False
        if event["event"] == "action":
            last_action = event["name"]
    return True


def test_a_conversation_alternating_between_replicas_stays_one_conversation(replicas):
    a, b = replicas
    wa_id = new_customer()
    assert a.post(meta.text(wa_id, "STOP")) == 200
    assert asks_for_confirmation(a, wa_id)
    assert b.post(meta.text(wa_id, "are you a bot?")) == 200
    assert asks_for_confirmation(b, wa_id)  # B answered, then asked again: it knew the form was open
    confirm = meta.button_reply(wa_id, "/affirm", CONFIRM_TITLE)
    assert a.post(confirm) == 200
    assert OPTED_OUT in last_text(a, wa_id)
    assert b.post(confirm) == 200  # WhatsApp delivers the same tap again, this time to B
    assert b.post(meta.text(wa_id, "STOP")) == 200
    assert "already opted out" in last_text(b, wa_id)

    from_a, from_b = tracker_events(a, wa_id), tracker_events(b, wa_id)
    assert from_a == from_b
    assert user_turns(from_a) == ["STOP", "are you a bot?", "/affirm", "STOP"]
    assert whole_turns(from_a)
    assert slot_values(from_a, "opt_out_outcome") == ["opted_out"]  # the form completed, once
    assert sum(OPTED_OUT in reply_text(body) for body in a.sent_to(wa_id)) == 1
    assert opt_out_count(a, wa_id) == (1, 1)


def test_a_customers_messages_arriving_at_both_replicas_at_once_are_handled_one_at_a_time(replicas):
    a, b = replicas
    wa_id = new_customer()
    payloads = [meta.text(wa_id, "hello") for _ in range(8)]
    with ThreadPoolExecutor(len(payloads)) as pool:
        statuses = list(pool.map(lambda n: (a, b)[n % 2].post(payloads[n]), range(len(payloads))))
    assert statuses == [200] * len(payloads)
    events = tracker_events(b, wa_id)
    assert user_turns(events) == ["hello"] * len(payloads)
    assert whole_turns(events)
    assert len(a.sent_to(wa_id)) == len(payloads)  # one greeting each
