"""Who sent it: identifiers, usernames, identity changes and unattributable events, parsed at the
door (bot/whatsapp/inbound.py). Pure: no database, no servers."""

from __future__ import annotations

import pytest

from bot.store.identifiers import BSUID, PARENT_BSUID, PHONE, Identifier
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.inbound import (
    ContactRequestReply,
    PreferenceValue,
    TextMessage,
    parse_webhook,
)

PHONE_ID = Identifier(PHONE, "4915112345678")
B1, B2 = Identifier(BSUID, "DE.1193386620457"), Identifier(BSUID, "DE.5560021187734")
PARENT = Identifier(PARENT_BSUID, "DE.ENT.5512")


def value_of(payload: dict) -> dict:
    return payload["entry"][0]["changes"][0]["value"]


def test_a_username_customer_has_a_bsuid_a_username_and_no_number():
    payload = meta.text(None, "Do you ship to Berlin?", user_id=B1.value, name="Ana", username="@ana.example")
    [message] = parse_webhook(payload).messages
    assert isinstance(message, TextMessage)
    assert message.sender.identifiers == (B1,)
    assert (message.sender.name, message.sender.username) == ("Ana", "@ana.example")
    assert message.wa_id is None and message.sender.evidence == "first_contact"


def test_every_identifier_of_a_message_is_read():
    payload = meta.text(PHONE_ID.value, "hi", user_id=B1.value, parent_user_id=PARENT.value)
    [message] = parse_webhook(payload).messages
    assert message.sender.identifiers == (PHONE_ID, B1, PARENT)
    assert message.sender.evidence == "webhook_pair"
    assert message.sender.preferred == B1


def test_the_contact_fills_in_what_the_message_leaves_out():
    payload = meta.text(None, "hi", user_id=None)
    value_of(payload)["contacts"] = [
        {"profile": {"name": "Ana"}, "user_id": B1.value, "wa_id": PHONE_ID.value}
    ]
    [message] = parse_webhook(payload).messages
    assert message.sender.identifiers == (PHONE_ID, B1)


@pytest.mark.parametrize("placeholder", ["<WHATSAPP_USER_PHONE_NUMBER>", "12345678901234567", ""])
def test_a_malformed_sender_with_a_valid_bsuid_is_that_bsuid(placeholder):
    payload = meta.text(placeholder, "hi", user_id=B1.value)
    [message] = parse_webhook(payload).messages
    assert message.sender.identifiers == (B1,)


@pytest.mark.parametrize(
    ("sender", "reason"),
    [("<WHATSAPP_USER_PHONE_NUMBER>", "malformed_identifier"), (None, "no_identifier")],
)
def test_a_sender_without_a_usable_identifier_is_unidentified_not_an_error(sender, reason):
    payload = meta.text(sender, "hi")
    value_of(payload)["contacts"] = [{"profile": {"name": "X"}, "wa_id": sender}] if sender else []
    batch = parse_webhook(payload)
    assert batch.messages == ()
    [event] = batch.unidentified
    assert (event.event, event.reason, event.counter) == ("message", reason, f"message_{reason}")


def test_seven_digit_numbers_are_read_and_sixteen_digit_ones_refused():
    [niue] = parse_webhook(meta.text("6831234", "hi")).messages
    assert niue.sender.phone == Identifier(PHONE, "6831234")
    assert parse_webhook(meta.text("1234567890123456", "hi")).unidentified[0].reason == "malformed_identifier"


@pytest.mark.parametrize(("length", "ok"), [(128, True), (129, False)])
def test_bsuids_may_have_128_characters_after_the_country_code(length, ok):
    bsuid = "US." + "7" * length
    batch = parse_webhook(meta.text(None, "hi", user_id=bsuid))
    assert bool(batch.messages) is ok and bool(batch.unidentified) is not ok


def test_a_lower_case_country_code_is_no_bsuid():
    assert parse_webhook(meta.text(None, "hi", user_id="de.1193386620457")).unidentified


@pytest.mark.parametrize("field", ["recipient_parent_user_id", "parent_recipient_user_id"])
def test_statuses_carry_every_identifier_in_both_parent_spellings(field):
    payload = meta.status("wamid.1", PHONE_ID.value, "delivered", recipient_user_id=B1.value)
    value_of(payload)["statuses"][0][field] = PARENT.value
    [status] = parse_webhook(payload).statuses
    assert status.recipient.identifiers == (PHONE_ID, B1, PARENT)


def test_a_failed_status_without_contacts_is_read():
    payload = meta.status("wamid.1", PHONE_ID.value, "failed", error_code=131050)
    assert "contacts" not in value_of(payload)
    [status] = parse_webhook(payload).statuses
    assert status.recipient.identifiers == (PHONE_ID,) and status.error_code == 131050


def test_a_failed_status_of_a_bsuid_send_has_only_the_bsuid():
    [status] = parse_webhook(
        meta.status("wamid.1", None, "failed", 131026, recipient_user_id=B1.value)
    ).statuses
    assert status.recipient.identifiers == (B1,) and status.recipient_id is None


def test_a_group_status_names_no_customer():
    payload = meta.status("wamid.1", "120363042000000000", "sent")
    value_of(payload)["statuses"][0]["recipient_type"] = "group"
    [status] = parse_webhook(payload).statuses
    assert status.recipient is None


def test_a_preference_with_only_a_user_id():
    [preference] = parse_webhook(meta.marketing_preference(None, "stop", user_id=B1.value)).preferences
    assert preference.sender.identifiers == (B1,) and preference.value is PreferenceValue.STOP
    assert preference.wa_id is None


def test_a_number_change_is_a_rotation_from_old_to_new():
    payload = meta.number_changed(PHONE_ID.value, "4917798765432", B2.value, B1.value, wamid="wamid.sys")
    batch = parse_webhook(payload)
    assert batch.messages == ()
    [rotation] = batch.rotations
    assert rotation.old == (PHONE_ID, B1)
    assert rotation.new == (Identifier(PHONE, "4917798765432"), B2)
    assert (rotation.kind, rotation.message_id) == ("user_changed_number", "wamid.sys")


@pytest.mark.parametrize("body_only", [False, True], ids=["previous_user_id", "body text (before Aug 2026)"])
def test_a_bsuid_change_without_a_number(body_only):
    [rotation] = parse_webhook(meta.user_id_changed(B1.value, B2.value, body_only=body_only)).rotations
    assert (rotation.old, rotation.new, rotation.kind) == ((B1,), (B2,), "user_changed_user_id")


def test_the_legacy_user_id_update_field_is_a_rotation_too():
    payload = meta.notification(
        {
            "contacts": [{"profile": {"name": "Ben"}, "wa_id": PHONE_ID.value}],
            "user_id_update": [
                {
                    "wa_id": PHONE_ID.value,
                    "detail": "User id for Ben has been updated.",
                    "user_id": {"previous": B1.value, "current": B2.value},
                    "timestamp": "1783000500",
                }
            ],
        },
        field="user_id_update",
    )
    [rotation] = parse_webhook(payload).rotations
    assert (rotation.old, rotation.new, rotation.kind) == ((B1,), (B2, PHONE_ID), "user_id_update")


def test_only_the_phone_number_request_button_proves_a_number():
    [reply] = parse_webhook(meta.contact_request_reply(B1.value, PHONE_ID.value)).messages
    assert isinstance(reply, ContactRequestReply) and reply.shared_phone == PHONE_ID
    assert not reply.expects_answer
    shared_card = meta.contact_request_reply(B1.value, PHONE_ID.value)
    value_of(shared_card)["messages"][0]["contacts"][0]["origin"] = "other"
    [card] = parse_webhook(shared_card).messages
    assert not isinstance(card, ContactRequestReply)
