"""Parsing webhooks into typed values, once, at the door."""

import pytest

from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.inbound import (
    ButtonReply,
    DeliveryStatus,
    MalformedWebhook,
    OtherMessage,
    PreferenceValue,
    QuickReply,
    TextMessage,
    parse_webhook,
)

CUSTOMER = "16505551234"


def test_text_message():
    batch = parse_webhook(meta.text(CUSTOMER, "stop", name="Ana", wamid="wamid.1", timestamp=1749416383))
    [message] = batch.messages
    assert isinstance(message, TextMessage)
    assert (message.id, message.wa_id, message.name, message.body) == ("wamid.1", CUSTOMER, "Ana", "stop")
    assert message.timestamp == 1749416383
    assert message.phone_number_id == meta.PHONE_NUMBER_ID


def test_batched_entries_changes_and_messages_are_all_read():
    one = meta.text(CUSTOMER, "a")
    two = meta.text("447700900123", "b")
    one["entry"].append(two["entry"][0])
    one["entry"][0]["changes"].append(meta.status("wamid.X", CUSTOMER, "read")["entry"][0]["changes"][0])
    batch = parse_webhook(one)
    assert [m.body for m in batch.messages] == ["a", "b"]
    assert [s.status for s in batch.statuses] == [DeliveryStatus.READ]


def test_template_quick_reply_keeps_payload_and_label():
    [message] = parse_webhook(meta.quick_reply(CUSTOMER, "STOP_PROMOTIONS", "Stop promotions")).messages
    assert isinstance(message, QuickReply)
    assert (message.payload, message.text) == ("STOP_PROMOTIONS", "Stop promotions")


def test_button_reply_with_context():
    payload = meta.button_reply(CUSTOMER, "/affirm", "Yes", context_id="wamid.OURS")
    [message] = parse_webhook(payload).messages
    assert isinstance(message, ButtonReply)
    assert (message.button_id, message.context_id) == ("/affirm", "wamid.OURS")


def test_unknown_message_type_is_kept_as_other():
    [message] = parse_webhook(meta.message(CUSTOMER, "hologram", {"x": 1})).messages
    assert isinstance(message, OtherMessage)
    assert message.kind == "hologram"
    assert message.expects_answer


def test_failed_status_keeps_its_error_code():
    [status] = parse_webhook(meta.status("wamid.X", CUSTOMER, "failed", error_code=131050)).statuses
    assert status.status is DeliveryStatus.FAILED
    assert status.error_code == 131050


def test_unknown_status_and_preference_values_do_not_crash():
    [status] = parse_webhook(meta.status("wamid.X", CUSTOMER, "warning")).statuses
    assert status.status is DeliveryStatus.UNKNOWN
    [pref] = parse_webhook(meta.marketing_preference(CUSTOMER, "pause")).preferences
    assert pref.value is PreferenceValue.UNKNOWN


def test_marketing_preference_with_numeric_timestamp():
    [pref] = parse_webhook(meta.marketing_preference(CUSTOMER, "stop", timestamp=1731705721)).preferences
    assert (pref.wa_id, pref.value, pref.timestamp) == (CUSTOMER, PreferenceValue.STOP, 1731705721)
    assert pref.category == "marketing_messages"


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"object": "whatsapp_business_account", "entry": "x"},
        # A sender, but no message id: not a message we can read.
        {
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"value": {"messages": [{"from": "16505551234", "type": "text"}]}}]}],
        },
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"statuses": "x"}}]}]},
    ],
)
def test_malformed_bodies_raise(body):
    with pytest.raises(MalformedWebhook):
        parse_webhook(body)


def test_a_message_from_nobody_is_unidentified_not_malformed():
    # Retrying could never make it attributable: acknowledged and counted (tests/test_inbound_identities.py).
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [{}]}}]}]}
    [event] = parse_webhook(body).unidentified
    assert event.reason == "no_identifier"
