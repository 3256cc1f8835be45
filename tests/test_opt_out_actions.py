"""The opt-out actions: their pure decisions (reading the confirmation answer, the opt-out source),
then the actions themselves in process with rasa-sdk trackers on a real SQLite store, the retry
path included. The same flows run end to end against real servers in tests/test_end_to_end.py."""

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import text

from actions.customer import optout_source
from actions.opt_out import ActionOptOut, confirmation_answer
from bot.consent import OPT_OUT
from bot.contract import Decision, Form, Intent, Metadata, Outcome, Slot, retry_turn
from bot.db import transaction
from bot.store.customers import profile
from bot.whatsapp.channel import TurnMustBeRetried, WhatsAppOutput


@pytest.mark.parametrize(
    ("intent", "expected"),
    [("affirm", "confirmed"), ("opt_out", "confirmed"), ("deny", "kept"), ("want_marketing", "kept")],
)
def test_yes_stop_and_no_settle_the_confirmation(intent, expected):
    assert confirmation_answer(intent, 0) == {"opt_out_decision": expected}


def test_a_low_confidence_yes_does_not_settle_the_confirmation():
    # More cases in tests/test_confirmation_answer.py.
    assert confirmation_answer("affirm", 0, 0.55) == {"opt_out_unclear_answers": 1}


@pytest.mark.parametrize(
    "intent", ["help", "bot_challenge", "order_help", "ask_offers", "complaint", "EXTERNAL_send_broadcast"]
)
def test_questions_and_outside_events_are_not_answers(intent):
    assert confirmation_answer(intent, 1) == {}


def test_the_second_unclear_answer_ends_the_confirmation_undecided():
    assert confirmation_answer("out_of_scope", 0) == {"opt_out_unclear_answers": 1}
    assert confirmation_answer("nlu_fallback", 1) == {
        "opt_out_unclear_answers": 2,
        "opt_out_decision": "unclear",
    }


def user(intent: str, kind: str | None, key: str = Metadata.MESSAGE_KIND) -> dict:
    metadata = {key: kind} if kind else {}
    return {"event": "user", "parse_data": {"intent": {"name": intent}}, "metadata": metadata}


@pytest.mark.parametrize(
    ("kind", "key", "source"),
    [
        ("quick_reply", Metadata.MESSAGE_KIND, "template"),
        ("button", Metadata.MESSAGE_KIND, "button"),
        ("list", Metadata.MESSAGE_KIND, "button"),
        ("text", Metadata.MESSAGE_KIND, "text"),
        (None, Metadata.MESSAGE_KIND, "text"),
        # a request made before the channel wrote `message_kind`, confirmed after the upgrade
        ("QuickReply", "message_type", "template"),
        ("ButtonReply", "message_type", "button"),
    ],
)
def test_the_source_is_how_the_customer_asked_to_stop(kind, key, source):
    events = [user("greet", "text"), user("opt_out", kind, key), user("affirm", "button")]
    assert optout_source(events) == source


# --- the actions in process, on a real SQLite store (rasa-sdk's Tracker and dispatcher) ---------

ADA = "4915100000001"


def asked(kind: str, decision: str | None, intent: str = "affirm") -> Tracker:
    """A conversation where the customer asked to stop by `kind` and answered with `intent`."""
    request = {Metadata.MESSAGE_ID: "wamid.stop", Metadata.MESSAGE_KIND: kind}
    answer = {Metadata.MESSAGE_ID: "wamid.answer", Metadata.MESSAGE_KIND: "button"}
    events = [
        {"event": "user", "parse_data": {"intent": {"name": Intent.OPT_OUT}}, "metadata": request},
        {"event": "user", "parse_data": {"intent": {"name": intent}}, "metadata": answer},
    ]
    latest = {"intent": {"name": intent, "confidence": 0.99}, "metadata": answer}
    return Tracker(ADA, {Slot.OPT_OUT_DECISION: decision}, latest, events, False, None, {}, Form.OPT_OUT)


async def run_opt_out(tracker: Tracker) -> tuple[list, CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    return await ActionOptOut().run(dispatcher, tracker, {}), dispatcher


def opt_out_tag() -> dict | None:
    with transaction() as conn:
        found = profile(conn, ADA)
    return next((tag for tag in (found or {}).get("tags", []) if tag["name"] == OPT_OUT), None)


async def test_yes_writes_the_tag_once_with_how_the_customer_asked(sqlite_url):
    events, dispatcher = await run_opt_out(asked("quick_reply", Decision.CONFIRMED))
    assert SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.OPTED_OUT) in events
    assert dispatcher.messages == []
    first = opt_out_tag()
    assert first is not None and first["source"] == "template"
    events, _ = await run_opt_out(asked("quick_reply", Decision.CONFIRMED))  # WhatsApp redelivers
    assert SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.OPTED_OUT) in events
    assert opt_out_tag() == first


@pytest.mark.parametrize(
    ("decision", "outcome"),
    [(Decision.KEPT, Outcome.KEPT), (None, Outcome.UNDECIDED), ("unclear", Outcome.UNDECIDED)],
)
async def test_anything_but_yes_writes_no_tag(sqlite_url, decision, outcome):
    events, _ = await run_opt_out(asked("text", decision, intent="deny"))
    assert events[-1] == SlotSet(Slot.OPT_OUT_OUTCOME, outcome)
    assert opt_out_tag() is None


@pytest.mark.parametrize(
    ("decision", "reason"),
    [(Decision.CONFIRMED, "could not save the opt-out"), (Decision.KEPT, "could not save the answer")],
)
async def test_an_answer_that_cannot_be_saved_asks_the_channel_to_retry_the_turn(
    sqlite_url, decision, reason
):
    with transaction() as conn:
        conn.execute(text("ALTER TABLE consent_events RENAME TO away"))
    events, dispatcher = await run_opt_out(asked("text", decision))
    assert events == [SlotSet(Slot.OPT_OUT_OUTCOME, Outcome.FAILED)]
    assert dispatcher.messages[0]["custom"] == retry_turn(reason)
    # ... and the channel turns that message into a failed turn, so WhatsApp redelivers it
    with pytest.raises(TurnMustBeRetried, match=reason):
        await WhatsAppOutput(client=None).send_custom_json(ADA, dispatcher.messages[0]["custom"])
    with transaction() as conn:
        conn.execute(text("ALTER TABLE away RENAME TO consent_events"))
    assert opt_out_tag() is None
