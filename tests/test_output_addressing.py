"""The WhatsApp output channel addresses the customer behind Rasa's sender id (the customer key):
`to` for a phone number, `recipient` for a BSUID, never both; 131062 drops only that message."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.db import transaction
from bot.fake_graph_api import ScriptedFailure
from bot.store.identifiers import BSUID, PHONE, Identifier
from bot.store.identities import identify
from bot.whatsapp.channel import WhatsAppOutput
from bot.whatsapp.cloud_api import CloudApiClient, RetryPolicy
from bot.whatsapp.outbound import Address, addressed

AT = datetime(2026, 9, 1, tzinfo=timezone.utc)
NUMBER, USER_ID = "4915112345678", "DE.1193386620457"


@pytest.fixture
async def output(sqlite_url, fake_graph):
    client = CloudApiClient(
        fake_graph.api_url, "106540352242922", "test-access-token", RetryPolicy(2, 0.01, 0.02)
    )
    yield WhatsAppOutput(client)
    await client.close()


def customer(*identifiers: Identifier) -> str:
    with transaction() as conn:
        return identify(conn, identifiers, "webhook_pair", AT).key


def test_addressed_sets_exactly_one_field():
    body = {"messaging_product": "whatsapp", "to": "x", "type": "text", "text": {"body": "hi"}}
    assert addressed(body, Address("recipient", USER_ID)) == {
        "messaging_product": "whatsapp",
        "recipient": USER_ID,
        "type": "text",
        "text": {"body": "hi"},
    }
    assert addressed(body, Address("to", NUMBER))["to"] == NUMBER


async def test_a_customer_with_a_number_is_sent_to_it(output, fake_graph):
    key = customer(Identifier(PHONE, NUMBER), Identifier(BSUID, USER_ID))
    await output.send_text_message(key, "hello")
    [sent] = fake_graph.state.sent
    assert sent["body"]["to"] == NUMBER and "recipient" not in sent["body"]


async def test_a_username_customer_is_sent_to_the_bsuid(output, fake_graph):
    key = customer(Identifier(BSUID, USER_ID))
    await output.send_text_message(key, "hello")
    [sent] = fake_graph.state.sent
    assert sent["body"]["recipient"] == USER_ID and "to" not in sent["body"]


async def test_a_message_that_needs_a_number_is_dropped_and_the_turn_goes_on(output, fake_graph):
    key = customer(Identifier(BSUID, USER_ID))
    fake_graph.state.failures.append(ScriptedFailure(code=131062, status=400, times=1))
    await output.send_text_message(key, "a one-tap code")  # no exception: the turn is not failed
    await output.send_text_message(key, "next message")
    assert [m["body"]["text"]["body"] for m in fake_graph.state.sent] == ["next message"]


async def test_an_address_read_with_the_inbound_message_is_used_without_asking_the_store(output, fake_graph):
    # The channel reads the sender's address in the claim's transaction and hands it to the turn's
    # output channel. Here the store does not know the key at all: only the handed-over address
    # can make the reply go out.
    known = WhatsAppOutput(output.client, {"c-not-in-the-store": Address("recipient", USER_ID)})
    await known.send_text_message("c-not-in-the-store", "hello")
    [sent] = fake_graph.state.sent
    assert sent["body"]["recipient"] == USER_ID
