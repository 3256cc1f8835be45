"""Pure decisions of the opt-out actions: reading the confirmation answer and the opt-out source."""

import pytest

from actions.customer import optout_source
from actions.opt_out import confirmation_answer
from bot.contract import Metadata


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
