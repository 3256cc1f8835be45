"""The WhatsApp channel in a real Sanic app: handshake, signatures, parsing, dedupe, retries, replies."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select, text

from bot.db import get_engine, transaction
from bot.schema import inbound_messages
from bot.store.identities import conversation_id
from bot.whatsapp import inbox
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER
from tests.whatsapp_app import VERIFY_TOKEN, WEBHOOK, by, make_app, post, signed

CUSTOMER = "16505551234"


@pytest.fixture
def app_and_agent(sqlite_url, fake_graph):
    return make_app(fake_graph.api_url)


def texts_sent(fake_graph) -> list[str]:
    return [m["body"]["text"]["body"] for m in fake_graph.state.sent if m["body"]["type"] == "text"]


def inbox_rows() -> list[dict]:
    with get_engine().connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(inbound_messages))]


async def test_handshake_echoes_the_challenge_when_the_token_matches(app_and_agent):
    app, _ = app_and_agent
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    _, response = await app.asgi_client.get(WEBHOOK, params=params)
    assert response.status == 200
    assert response.text == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
async def test_handshake_is_refused_otherwise(app_and_agent, params):
    app, _ = app_and_agent
    _, response = await app.asgi_client.get(WEBHOOK, params=params)
    assert response.status == 403
    assert "1" not in response.text


async def test_text_message_reaches_rasa_with_its_metadata_and_the_reply_reaches_whatsapp(
    app_and_agent, fake_graph
):
    app, agent = app_and_agent
    payload = meta.text(CUSTOMER, "hello there", name="Ana", context_id="wamid.PREVIOUS")
    wamid = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    response = await post(app, payload)
    assert response.status == 200
    [message] = agent.messages
    assert message.text == "hello there"
    # The conversation is the customer's key, never their number (it survives a number change).
    with transaction() as conn:
        assert message.sender_id == conversation_id(conn, CUSTOMER)
    assert message.sender_id.startswith("c_")
    assert message.metadata["wa_id"] == CUSTOMER
    assert message.input_channel == "whatsapp"
    assert message.message_id == wamid
    assert message.metadata["name"] == "Ana"
    assert message.metadata["context_id"] == "wamid.PREVIOUS"
    assert message.metadata["phone_number_id"] == meta.PHONE_NUMBER_ID
    assert isinstance(message.metadata["timestamp"], int)
    [sent] = fake_graph.state.sent
    assert sent["body"]["to"] == CUSTOMER
    assert sent["body"]["text"]["body"] == "echo: hello there"


async def test_missing_signature_is_refused_and_nothing_is_processed(app_and_agent):
    app, agent = app_and_agent
    body, _ = signed(meta.text(CUSTOMER, "stop"))
    _, response = await app.asgi_client.post(WEBHOOK, content=body)
    assert response.status == 401
    assert agent.messages == []
    assert inbox_rows() == []


@pytest.mark.parametrize(
    "header",
    ["sha256=" + "0" * 64, "sha1=abc", "garbage", "sha256="],
)
async def test_forged_signature_is_refused_and_nothing_is_processed(app_and_agent, header):
    app, agent = app_and_agent
    body, _ = signed(meta.text(CUSTOMER, "stop"))
    response = await post(app, json.loads(body), headers={HEADER: header})
    assert response.status == 403
    assert agent.messages == []
    assert inbox_rows() == []


async def test_body_signed_with_another_secret_is_refused(app_and_agent):
    app, agent = app_and_agent
    body, headers = signed(meta.text(CUSTOMER, "stop"), secret="someone-else")
    _, response = await app.asgi_client.post(WEBHOOK, content=body, headers=headers)
    assert response.status == 403
    assert agent.messages == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        json.dumps({"object": "page", "entry": []}).encode(),
        json.dumps({"object": "whatsapp_business_account"}).encode(),
        json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": 3}]}]}).encode(),
        # a message without its id cannot be deduplicated
        json.dumps(meta.text(CUSTOMER, "hi")).replace('"id": "wamid', '"idx": "wamid').encode(),
        json.dumps(meta.text(CUSTOMER, "hi")).replace('"timestamp": "', '"timestamp": "x').encode(),
    ],
    # Named, not shown: the last two carry a random wamid, and parallel workers (pytest -n) must
    # collect the same test ids.
    ids=["not-json", "list", "page", "no-entry", "bad-change", "no-message-id", "bad-timestamp"],
)
async def test_malformed_webhook_gets_400(app_and_agent, body):
    app, agent = app_and_agent
    body, headers = signed(body)
    _, response = await app.asgi_client.post(WEBHOOK, content=body, headers=headers)
    assert response.status == 400
    assert agent.messages == []


async def test_oversized_body_gets_413(app_and_agent):
    app, agent = app_and_agent
    payload = meta.text(CUSTOMER, "x" * (5 * 1024 * 1024))
    response = await post(app, payload)
    assert response.status == 413
    assert agent.messages == []


async def test_unknown_fields_are_ignored(app_and_agent):
    app, agent = app_and_agent
    payload = meta.text(CUSTOMER, "hi")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = "US.13491208655302741918"
    value["messages"][0]["brand_new_field"] = {"x": 1}
    assert (await post(app, payload)).status == 200
    assert [m.text for m in agent.messages] == ["hi"]


@pytest.mark.parametrize("typed", ["/EXTERNAL_send_broadcast", "/opt_out", '  //affirm{"x": "y"}', "/"])
async def test_typed_text_can_never_be_an_intent_payload(app_and_agent, typed):
    app, agent = app_and_agent
    await post(app, meta.text(CUSTOMER, typed))
    [message] = agent.messages
    assert not message.text.startswith("/")
    assert message.text == typed.strip().lstrip("/").strip()


async def test_reply_button_id_is_the_payload(app_and_agent):
    app, agent = app_and_agent
    await post(app, meta.button_reply(CUSTOMER, "/affirm", "Yes, stop"))
    await post(app, meta.list_reply(CUSTOMER, "/deny", "Keep them"))
    assert [m.text for m in agent.messages] == ["/affirm", "/deny"]


async def test_a_button_id_naming_an_external_intent_is_not_obeyed(app_and_agent):
    app, agent = app_and_agent
    await post(app, meta.button_reply(CUSTOMER, "/EXTERNAL_send_broadcast", "Offers"))
    assert [m.text for m in agent.messages] == ["Offers"]


@pytest.mark.parametrize(
    ("payload", "label", "expected"),
    [
        ("STOP_PROMOTIONS", "Stop promotions", "/opt_out"),
        ("Stop promotions", "Stop promotions", "/opt_out"),  # Meta's own example: label twice
        ("Parar promoções", "Parar promoções", "/opt_out"),
        ("something-else", "PARAR PROMOCOES!", "/opt_out"),
        ("TRACK_ORDER", "Track my order", "Track my order"),
        ("/EXTERNAL_send_broadcast", "Offers", "Offers"),
    ],
)
async def test_template_quick_reply_is_looked_up_in_the_payload_table(
    app_and_agent, payload, label, expected
):
    app, agent = app_and_agent
    await post(app, meta.quick_reply(CUSTOMER, payload, label))
    assert [m.text for m in agent.messages] == [expected]


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("image", {"mime_type": "image/jpeg", "sha256": "abc", "id": "1234"}),
        ("location", {"latitude": 38.9, "longitude": -77.0, "name": "Home"}),
        ("contacts", [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+1 555"}]}]),
        ("unsupported", None),
        ("sticker", {"id": "5678", "animated": False}),
        ("interactive", None),  # an interactive message without its body
        ("some_type_meta_adds_tomorrow", {"x": 1}),
    ],
)
async def test_messages_the_bot_cannot_read_are_acknowledged_and_answered(
    app_and_agent, fake_graph, kind, content
):
    app, agent = app_and_agent
    response = await post(app, meta.message(CUSTOMER, kind, content))
    assert response.status == 200
    assert agent.messages == []
    [reply] = texts_sent(fake_graph)
    assert "text messages and button" in reply


async def test_reactions_and_system_notices_are_acknowledged_without_an_answer(app_and_agent, fake_graph):
    app, agent = app_and_agent
    assert (
        await post(app, meta.message(CUSTOMER, "reaction", {"message_id": "wamid.X", "emoji": "👍"}))
    ).status == 200
    system = {"body": "User changed number", "type": "user_changed_number"}
    assert (await post(app, meta.message(CUSTOMER, "system", system))).status == 200
    assert agent.messages == []
    assert fake_graph.state.sent == []


async def test_redelivered_message_is_processed_once(db_url, fake_graph):
    # On both databases: the dedupe is the inbox's unique key, which each dialect enforces itself.
    app, agent = make_app(fake_graph.api_url)
    payload = meta.text(CUSTOMER, "stop")
    assert (await post(app, payload)).status == 200
    assert (await post(app, payload)).status == 200
    assert len(agent.messages) == 1
    assert len(fake_graph.state.sent) == 1


async def test_copies_arriving_at_the_same_instant_are_processed_once(app_and_agent):
    app, agent = app_and_agent
    agent.delay = 0.05
    payload = meta.text(CUSTOMER, "stop")
    responses = await asyncio.gather(*(post(app, payload) for _ in range(20)))
    assert len(agent.messages) == 1
    # the copy that did the work says 200; copies still in flight ask to be retried, never lost
    statuses = sorted(r.status for r in responses)
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 503}
    # once processing has finished, every redelivery is acknowledged
    assert (await post(app, payload)).status == 200
    assert len(agent.messages) == 1


async def test_failed_turn_answers_500_and_the_retry_is_processed(app_and_agent):
    app, agent = app_and_agent
    agent.fail_next = 1
    payload = meta.text(CUSTOMER, "yes")
    assert (await post(app, payload)).status == 500
    assert agent.messages == []
    assert inbox_rows() == []  # the claim was released: the retry will not be swallowed
    assert (await post(app, payload)).status == 200
    assert [m.text for m in agent.messages] == ["yes"]
    assert (await post(app, payload)).status == 200
    assert len(agent.messages) == 1


async def test_a_reply_throttled_with_130429_is_retried_and_sent_once(app_and_agent, fake_graph):
    from bot.fake_graph_api import ScriptedFailure

    app, _ = app_and_agent
    fake_graph.state.failures.append(ScriptedFailure(code=130429, status=400, times=2))
    assert (await post(app, meta.text(CUSTOMER, "hello"))).status == 200
    assert fake_graph.state.attempts == 3  # two refusals, then the reply (the client's backoff)
    assert texts_sent(fake_graph) == ["echo: hello"]


async def test_database_down_answers_500_and_the_retry_after_recovery_is_processed(app_and_agent, sqlite_url):
    app, agent = app_and_agent
    payload = meta.text(CUSTOMER, "yes")
    engine = get_engine()
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE inbound_messages RENAME TO inbound_messages_away"))
    assert (await post(app, payload)).status == 500
    assert agent.messages == []
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE inbound_messages_away RENAME TO inbound_messages"))
    assert (await post(app, payload)).status == 200
    assert [m.text for m in agent.messages] == ["yes"]


async def test_a_claim_abandoned_by_a_dead_process_is_taken_over_after_its_lease(sqlite_url):
    from datetime import timedelta

    assert inbox.claim("wamid.A", by(CUSTOMER))[0] is inbox.Claim.NEW
    assert inbox.claim("wamid.A", by(CUSTOMER))[0] is inbox.Claim.BUSY
    assert inbox.claim("wamid.A", by(CUSTOMER), lease=timedelta(0))[0] is inbox.Claim.NEW
    inbox.finish("wamid.A")
    assert inbox.claim("wamid.A", by(CUSTOMER), lease=timedelta(0))[0] is inbox.Claim.DONE


async def test_batch_messages_are_processed_in_order_and_a_failure_holds_back_the_senders_later_ones(
    app_and_agent,
):
    app, agent = app_and_agent
    first = meta.text(CUSTOMER, "one")
    value = first["entry"][0]["changes"][0]["value"]
    second = meta.text(CUSTOMER, "two")["entry"][0]["changes"][0]["value"]["messages"][0]
    other = meta.text("447700900123", "other")["entry"][0]["changes"][0]["value"]["messages"][0]
    value["messages"] += [second, other]
    agent.fail_next = 1
    assert (await post(app, first)).status == 500
    assert [m.text for m in agent.messages] == ["other"]
    assert (await post(app, first)).status == 200
    assert [m.text for m in agent.messages] == ["other", "one", "two"]


async def test_statuses_never_move_backwards_and_failures_keep_their_code(app_and_agent):
    app, _ = app_and_agent
    for s in ("delivered", "sent", "read", "delivered"):
        assert (await post(app, meta.status("wamid.OUT1", CUSTOMER, s))).status == 200
    assert inbox.status_of("wamid.OUT1")["status"] == "read"
    await post(app, meta.status("wamid.OUT2", CUSTOMER, "sent"))
    await post(app, meta.status("wamid.OUT2", CUSTOMER, "failed", error_code=131026))
    await post(app, meta.status("wamid.OUT2", CUSTOMER, "delivered"))
    stored = inbox.status_of("wamid.OUT2")
    assert (stored["status"], stored["error_code"]) == ("failed", 131026)


async def test_unknown_status_value_is_acknowledged_and_not_stored(app_and_agent):
    app, _ = app_and_agent
    assert (await post(app, meta.status("wamid.OUT3", CUSTOMER, "warning"))).status == 200
    assert inbox.status_of("wamid.OUT3") is None


async def test_without_app_secret_posts_are_refused_unless_unsigned_mode_is_switched_on(
    sqlite_url, fake_graph
):
    app, agent = make_app(fake_graph.api_url, app_secret="")
    body = json.dumps(meta.text(CUSTOMER, "hi")).encode()
    _, response = await app.asgi_client.post(WEBHOOK, content=body)
    assert response.status == 503
    assert agent.messages == []
    app, agent = make_app(fake_graph.api_url, app_secret="", allow_unsigned=True)
    _, response = await app.asgi_client.post(WEBHOOK, content=body)
    assert response.status == 200
    assert [m.text for m in agent.messages] == ["hi"]


async def test_health_route(app_and_agent):
    app, _ = app_and_agent
    _, response = await app.asgi_client.get("/webhooks/whatsapp/")
    assert response.status == 200
    assert response.json == {"status": "ok", "can_send": True, "unidentified_events": {}}
