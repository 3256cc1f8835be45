"""The dashboard over HTTP: the token gate, the pages on a real (SQLite) customer store, and the
simulator's backend sending signed webhooks to a stand-in bot and reading the Graph API stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.dashboard import auth
from bot.dashboard.app import DashboardConfig, build_app
from bot.dashboard.simulator import SimulatorSettings
from bot.db import transaction
from bot.schema import message_statuses
from bot.store.customers import record_sighting, touch_customer
from bot.store.identifiers import Identifier
from bot.store.identities import Address, identify
from bot.store.tags import add_tag, record_opt_out
from bot.whatsapp.inbound import parse_webhook
from bot.whatsapp.outbound import addressed, text_messages
from bot.whatsapp.signature import HEADER, SignatureCheck, check_signature

TOKEN = "admin-token"
APP_SECRET = "sim-app-secret"
PHONE_NUMBER_ID = "106540352242922"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
EVIL_NAME = "<script>alert(1)</script>"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens there: "Rasa is down"


def seed() -> None:
    with transaction() as conn:
        touch_customer(conn, "16505551234", "Ann Opted", NOW - timedelta(hours=2))
        record_opt_out(conn, "16505551234", "template", "wamid.ann", NOW - timedelta(hours=1))
        touch_customer(conn, "4915100000001", EVIL_NAME, NOW - timedelta(hours=3))
        add_tag(conn, "4915100000001", "VIP", "import", None, NOW - timedelta(days=3))
        touch_customer(conn, "5511999990000", "Bruno 100%", NOW - timedelta(hours=4))
        conn.execute(
            message_statuses.insert().values(
                wamid="wamid.out1",
                recipient_id="16505551234",
                status="read",
                rank=3,
                status_at=NOW - timedelta(minutes=90),
                updated_at=NOW,
            )
        )


@dataclass
class FakeBot:
    """The Rasa server as the dashboard sees it: tracker API, channel health, signed webhook that
    answers every text through the Graph API stand-in (like the real channel does)."""

    api_url: str = ""
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None

    def app(self) -> web.Application:
        async def tracker(request: web.Request) -> web.Response:
            if request.query.get("token") != TOKEN:
                return web.json_response({"error": "unauthorized"}, status=401)
            events = [
                {
                    "event": "user",
                    "timestamp": NOW.timestamp(),
                    "text": "STOP",
                    "parse_data": {"intent": {"name": "opt_out"}},
                },
                {"event": "bot", "timestamp": NOW.timestamp(), "text": "Done: <b>opted out</b>"},
            ]
            return web.json_response({"sender_id": request.match_info["wa_id"], "events": events})

        async def health(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def webhook(request: web.Request) -> web.Response:
            body = await request.read()
            if check_signature(body, request.headers.get(HEADER), APP_SECRET) is not SignatureCheck.VALID:
                return web.json_response({"error": "invalid signature"}, status=403)
            payload = json.loads(body)
            self.webhooks.append(payload)
            if self.fail_with:
                return web.json_response({"error": "boom"}, status=self.fail_with)
            for message in parse_webhook(payload).messages:
                text = getattr(message, "body", None) or getattr(message, "title", None) or "?"
                # As the channel does: `to` the number, else `recipient` the BSUID.
                sender = message.sender
                address = (
                    Address("to", sender.phone.value)
                    if sender.phone
                    else Address("recipient", sender.bsuid.value)
                )
                async with aiohttp.ClientSession() as session:
                    for reply in text_messages(address.value, f"echo: {text}"):
                        await session.post(
                            f"{self.api_url}/{PHONE_NUMBER_ID}/messages",
                            json=addressed(reply, address),
                            headers={"Authorization": "Bearer test-access-token"},
                        )
            return web.Response(text="EVENT_RECEIVED")

        app = web.Application()
        app.router.add_get("/conversations/{wa_id}/tracker", tracker)
        app.router.add_get("/webhooks/whatsapp/", health)
        app.router.add_post("/webhooks/whatsapp/webhook", webhook)
        return app


@pytest.fixture
async def fake_bot(fake_graph) -> AsyncIterator[tuple[FakeBot, str]]:
    bot = FakeBot(api_url=fake_graph.api_url)
    server = TestServer(bot.app())
    await server.start_server()
    yield bot, str(server.make_url("")).rstrip("/")
    await server.close()


async def _client(config: DashboardConfig) -> TestClient:
    client = TestClient(TestServer(build_app(config)))
    await client.start_server()
    return client


@pytest.fixture
async def anonymous(sqlite_url) -> AsyncIterator[TestClient]:
    seed()
    client = await _client(DashboardConfig(token=TOKEN, rasa_url=CLOSED_PORT_URL))
    yield client
    await client.close()


@pytest.fixture
async def client(anonymous: TestClient) -> TestClient:
    response = await anonymous.get(f"/customers?token={TOKEN}", allow_redirects=False)
    assert response.status == 303
    return anonymous


@pytest.fixture
async def simulator(sqlite_url, fake_graph, fake_bot) -> AsyncIterator[tuple[TestClient, FakeBot]]:
    bot, bot_url = fake_bot
    settings = SimulatorSettings(
        webhook_url=f"{bot_url}/webhooks/whatsapp/webhook",
        app_secret=APP_SECRET,
        stand_in_url=fake_graph.api_url.rsplit("/", 1)[0],
        api_url=fake_graph.api_url,
        access_token="test-access-token",
        phone_number_id=PHONE_NUMBER_ID,
    )
    client = await _client(DashboardConfig(token=TOKEN, rasa_url=bot_url, simulator=settings))
    await client.get(f"/simulator?token={TOKEN}")
    yield client, bot
    await client.close()


# --- the token gate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/customers", "/customers/16505551234", "/opt-outs", "/broadcasts", "/simulator"]
)
async def test_pages_redirect_to_the_login_without_the_token(anonymous, path):
    response = await anonymous.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/simulator/api/conversation?wa_id=15551234567"),
        ("POST", "/simulator/api/send"),
        ("POST", "/simulator/api/promo"),
    ],
)
async def test_api_answers_401_without_the_token(anonymous, method, path):
    response = await anonymous.request(method, path, json={})
    assert response.status == 401


async def test_a_wrong_token_is_refused(anonymous):
    response = await anonymous.get("/customers?token=wrong", allow_redirects=False)
    assert response.status == 401
    assert "Set-Cookie" not in response.headers
    bad_cookie = await anonymous.get("/customers", cookies={auth.COOKIE: "forged"}, allow_redirects=False)
    assert bad_cookie.status == 303


async def test_the_token_in_the_address_becomes_an_http_only_cookie_and_leaves_the_address(anonymous):
    response = await anonymous.get(f"/customers?q=ann&token={TOKEN}", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/customers?q=ann"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert (await anonymous.get("/customers?q=ann")).status == 200


async def test_login_form_and_logout(anonymous):
    form = await anonymous.get("/login?next=/opt-outs")
    assert form.status == 200 and 'name="next" value="/opt-outs"' in await form.text()
    wrong = await anonymous.post("/login", data={"token": "nope", "next": "/opt-outs"}, allow_redirects=False)
    assert wrong.status == 401
    right = await anonymous.post(
        "/login", data={"token": TOKEN, "next": "//evil.example"}, allow_redirects=False
    )
    assert right.status == 303 and right.headers["Location"] == "/customers"
    assert (await anonymous.get("/opt-outs", allow_redirects=False)).status == 200
    out = await anonymous.post("/logout", allow_redirects=False)
    assert out.status == 303
    assert (await anonymous.get("/opt-outs", allow_redirects=False)).status == 303


async def test_cross_site_posts_are_refused_even_when_logged_in(client):
    headers = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (await client.post("/login", data={"token": TOKEN}, headers=headers)).status == 403
    assert (await client.post("/simulator/api/send", json={}, headers=headers)).status == 403


async def test_pages_are_not_cached_framed_or_allowed_foreign_scripts(client):
    response = await client.get("/customers")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    redirect = await client.get("/", allow_redirects=False)
    assert redirect.status == 303 and redirect.headers["Cache-Control"] == "no-store"


async def test_static_files_and_health_need_no_token(anonymous):
    assert (await anonymous.get("/static/dashboard.css")).status == 200
    assert (await anonymous.get("/static/simulator.js")).status == 200
    assert (await anonymous.get("/health")).status == 200


def test_no_route_writes_consent():
    """The only routes that are not GET log in and out, or drive the simulated customer."""
    app = build_app(DashboardConfig(token=TOKEN, rasa_url=CLOSED_PORT_URL))
    writes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("GET", "HEAD")
    }
    assert writes == {
        ("POST", "/login"),
        ("POST", "/logout"),
        ("POST", "/simulator/api/send"),
        ("POST", "/simulator/api/promo"),
    }


# --- pages ----------------------------------------------------------------------------------


async def test_customer_list_escapes_names_and_marks_opt_outs(client):
    html = await (await client.get("/customers")).text()
    assert "3 customers found" in html
    assert EVIL_NAME not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<span class="tag tag-opt-out">OPT_OUT</span>' in html
    # Most recent message first.
    assert html.index("Ann Opted") < html.index("&lt;script&gt;") < html.index("Bruno")


SHOWN_NAMES = ("Ann Opted", "&lt;script&gt;alert(1)&lt;/script&gt;", "Bruno 100%")


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("q=ann", ["Ann Opted"]),
        ("q=%2B1+650-555", ["Ann Opted"]),  # "+1 650-555": the digits match the number
        ("q=%25", ["Bruno 100%"]),  # % is a character, not a wildcard
        ("q=_", []),  # and so is _
        ("tag=OPT_OUT", ["Ann Opted"]),
        ("tag=VIP", ["&lt;script&gt;alert(1)&lt;/script&gt;"]),
        ("q=bruno&tag=OPT_OUT", []),
    ],
)
async def test_customer_search_and_tag_filter(client, query, found):
    html = await (await client.get(f"/customers?{query}")).text()
    table = html.split("<tbody>")[1] if "<tbody>" in html else ""
    assert [name for name in SHOWN_NAMES if name in table] == found
    assert f"{len(found)} customer{'' if len(found) == 1 else 's'} found" in html


async def test_profile_shows_the_opt_out_with_when_and_how_and_the_conversation_from_rasa(
    sqlite_url, fake_bot
):
    seed()
    _, bot_url = fake_bot
    client = await _client(DashboardConfig(token=TOKEN, rasa_url=bot_url))
    try:
        html = await (await client.get(f"/customers/16505551234?token={TOKEN}")).text()
    finally:
        await client.close()
    assert 'class="banner opted-out"' in html
    added = (NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M UTC")
    assert f'Added <time datetime="{(NOW - timedelta(hours=1)).isoformat()}">{added}</time>' in html
    assert "Stop promotions" in html and "Opted out of marketing" in html
    assert "From Rasa's conversation store" in html and "understood as opt_out" in html
    assert "Done: &lt;b&gt;opted out&lt;/b&gt;" in html  # the bot's words are text too


async def test_profile_falls_back_to_the_message_records_when_rasa_is_down(client):
    html = await (await client.get("/customers/16505551234")).text()
    assert "could not be reached" in html
    assert "wamid.out1" in html and "read" in html


@pytest.mark.parametrize("wa_id", ["19999999999", "not-a-number"])
async def test_unknown_customer_is_404(client, wa_id):
    assert (await client.get(f"/customers/{wa_id}")).status == 404


async def test_opt_out_statistics(client):
    html = await (await client.get("/opt-outs")).text()
    assert "<strong>1</strong> of 3 customers opted out (33.3%)" in html
    assert '<svg class="chart"' in html
    day = (NOW - timedelta(hours=1)).date().isoformat()  # when Ann opted out
    assert f"<tr><td>{day}</td><td>1</td></tr>" in html
    for period in ("12w", "12m", "bogus"):
        assert (await client.get(f"/opt-outs?period={period}")).status == 200


async def test_broadcasts_and_their_reports(client):
    assert "No broadcasts yet" in await (await client.get("/broadcasts")).text()
    with transaction() as conn:
        deliveries.create(conn, "b-<1>", "promo_offer", "en_US", ["20% off"], Audience(), 80.0, 3, NOW)
    listing = await (await client.get("/broadcasts")).text()
    assert 'href="/broadcasts/b-%3C1%3E"' in listing and "b-&lt;1&gt;" in listing
    detail = await client.get("/broadcasts/b-%3C1%3E")
    text = await detail.text()
    assert detail.status == 200
    assert "<dt>Skipped: opted out</dt><dd>1 (1 when the audience was selected" in text
    assert "<dt>Pending</dt><dd>2</dd>" in text
    assert (await client.get("/broadcasts/nope")).status == 404


async def test_simulator_is_off_without_a_stand_in(client):
    response = await client.get("/simulator")
    assert response.status == 404 and "simulator is off" in await response.text()
    assert (await client.post("/simulator/api/send", json={})).status == 404
    assert "/simulator" not in await (await client.get("/customers")).text()


# --- the simulator's backend --------------------------------------------------------------


async def _send(client: TestClient, action: dict[str, Any], wa_id: str = "15551234567") -> dict[str, Any]:
    response = await client.post(
        "/simulator/api/send", json={"wa_id": wa_id, "name": "Sim", "action": action}
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_text_goes_as_a_signed_webhook_and_the_reply_comes_back_from_the_stand_in(simulator):
    client, bot = simulator
    answer = await _send(client, {"type": "text", "text": "STOP"})
    entries = answer["entries"]
    assert [(e["direction"], e["status"], e["bubble"]["text"]) for e in entries] == [
        ("in", "delivered", "STOP"),
        ("out", "", "echo: STOP"),
    ]
    message_webhook, receipts = bot.webhooks
    assert message_webhook["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] == "Sim"
    statuses = parse_webhook(receipts).statuses
    assert [(s.message_id, s.raw_status) for s in statuses] == [
        (entries[1]["id"], "delivered"),
        (entries[1]["id"], "read"),
    ]
    # Polling shows the same conversation and sends no receipt twice.
    polled = await (await client.get("/simulator/api/conversation?wa_id=15551234567")).json()
    assert polled["entries"] == entries and polled["bot_online"] is True
    # Three changes: the message, its delivery, the reply. The page draws no older version.
    assert polled["version"] == answer["version"] == 3
    assert len(bot.webhooks) == 2


async def test_taps_carry_the_tapped_message_as_context(simulator):
    client, bot = simulator
    await _send(
        client, {"type": "button_reply", "id": "/affirm", "title": "Yes, stop them", "context": "wamid.Q"}
    )
    message = bot.webhooks[0]["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["interactive"]["button_reply"] == {"id": "/affirm", "title": "Yes, stop them"}
    assert message["context"]["id"] == "wamid.Q"


async def test_a_refused_webhook_shows_as_a_failed_message(simulator):
    client, bot = simulator
    bot.fail_with = 500
    [entry] = (await _send(client, {"type": "text", "text": "hi"}))["entries"]
    assert entry["status"] == "failed" and "500" in entry["detail"]


async def test_the_promo_is_sent_only_to_customers_who_did_not_opt_out(simulator, fake_graph):
    client, _ = simulator
    response = await client.post("/simulator/api/promo", json={"wa_id": "15551234567"})
    [promo] = (await response.json())["entries"]
    assert promo["bubble"]["kind"] == "template"
    assert promo["bubble"]["quick_replies"] == [{"payload": "STOP_PROMOTIONS", "text": "Stop promotions"}]
    with transaction() as conn:
        record_opt_out(conn, "15551234567", "text", "wamid.stop", NOW)
    response = await client.post("/simulator/api/promo", json={"wa_id": "15551234567"})
    note = (await response.json())["entries"][-1]
    assert note["direction"] == "note" and "opted out" in note["bubble"]["text"]
    assert [m["body"]["type"] for m in fake_graph.state.sent] == ["template"]


@pytest.mark.parametrize(
    "body",
    [
        {"wa_id": "123", "action": {"type": "text", "text": "hi"}},
        {"wa_id": "15551234567", "action": {"type": "video"}},
        {"wa_id": "15551234567", "action": "STOP"},
    ],
)
async def test_bad_simulator_requests_are_400(simulator, body):
    client, bot = simulator
    assert (await client.post("/simulator/api/send", json=body)).status == 400
    assert bot.webhooks == []


# --- customers known by a BSUID -------------------------------------------------------------

ANA_BSUID = "DE.7730551842193"


def seed_username_customer() -> None:
    """Ana wrote with her number hidden (BSUID only), then a status of a message to a number
    showed that number is hers too: two customers, merged."""
    with transaction() as conn:
        ana = identify(conn, [Identifier("bsuid", ANA_BSUID)], "first_contact", NOW - timedelta(hours=1))
        record_sighting(conn, ana.id, "Ana Username", "ana.example", NOW - timedelta(hours=1))
        record_opt_out(conn, ANA_BSUID, "meta_preferences", None, NOW - timedelta(minutes=30))
        identify(conn, [Identifier("phone", "4915112345678")], "first_contact", NOW - timedelta(days=1))
        identify(
            conn,
            [Identifier("phone", "4915112345678"), Identifier("bsuid", ANA_BSUID)],
            "status_pair",
            NOW - timedelta(minutes=10),
        )


@pytest.mark.parametrize(
    "query",
    ["q=%40ana.example", "q=ANA.EX", "q=de.77305", "q=DE.7730551842193", "q=%2B49+151+123", "q=ana+user"],
)
async def test_search_finds_a_customer_by_username_bsuid_or_a_merged_in_number(client, query):
    seed_username_customer()
    html = await (await client.get(f"/customers?{query}")).text()
    assert "1 customer found" in html
    row = html.split("<tbody>")[1]
    assert "Ana Username" in row and "+4915112345678" in row and "@ana.example" in row


async def test_search_for_an_unknown_bsuid_finds_nobody(client):
    seed_username_customer()
    assert "0 customers found" in await (await client.get("/customers?q=ZZ.88")).text()


async def test_a_profile_is_found_by_bsuid_number_or_key_and_lists_identities_and_merges(client):
    seed_username_customer()
    listing = await (await client.get("/customers?q=ana")).text()
    link = listing.split('<a href="/customers/')[1].split('"')[0]
    assert link.startswith("c_")  # the list links the customer key
    pages = [
        await (await client.get(f"/customers/{who}")).text() for who in (ANA_BSUID, "4915112345678", link)
    ]
    assert pages[0] == pages[1] == pages[2]
    html = pages[0]
    assert "Username @ana.example." in html
    identities = html.split('id="identities"')[1].split("</table>")[0]
    assert f"<td>BSUID</td><td><code>{ANA_BSUID}</code></td><td>active</td>" in identities
    assert "<td>Phone number</td><td><code>+4915112345678</code></td><td>active</td>" in identities
    assert "the customer wrote from it" in identities
    merges = html.split('id="merges"')[1].split("</ul>")[0]
    assert "a delivery status from WhatsApp carried it with another identifier" in merges
    assert 'class="banner opted-out"' in html and "in WhatsApp itself" in html


async def test_a_malformed_bsuid_is_a_404_not_an_error(client):
    assert (await client.get("/customers/de.7730551842193")).status == 404


HIDDEN = {"user_id": ANA_BSUID, "username": "@Ana.Example"}


async def test_the_username_switch_sends_webhooks_without_any_phone_number(simulator):
    client, bot = simulator
    response = await client.post(
        "/simulator/api/send",
        json={**HIDDEN, "wa_id": "15551234567", "name": "Ana", "action": {"type": "text", "text": "STOP"}},
    )
    assert response.status == 200, await response.text()
    entries = (await response.json())["entries"]
    assert [(e["direction"], e["status"], e["bubble"]["text"]) for e in entries] == [
        ("in", "delivered", "STOP"),
        ("out", "", "echo: STOP"),
    ]
    message_webhook, receipts = bot.webhooks
    value = message_webhook["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [
        {"profile": {"name": "Ana", "username": "ana.example"}, "user_id": ANA_BSUID}
    ]
    [message] = value["messages"]
    assert message["from_user_id"] == ANA_BSUID and "from" not in message
    assert "15551234567" not in json.dumps(bot.webhooks)  # the number is hidden everywhere
    # The reply went to the BSUID, and the phone reports it under the BSUID too.
    raw_statuses = receipts["entry"][0]["changes"][0]["value"]["statuses"]
    assert [(s["status"], s["recipient_user_id"], "recipient_id" in s) for s in raw_statuses] == [
        ("delivered", ANA_BSUID, False),
        ("read", ANA_BSUID, False),
    ]
    statuses = parse_webhook(receipts).statuses
    assert [s.message_id for s in statuses] == [entries[1]["id"]] * 2
    polled = await (
        await client.get(f"/simulator/api/conversation?user_id={ANA_BSUID}&username=ana.example")
    ).json()
    assert polled["entries"] == entries
    # The same person as a phone customer is another timeline (no evidence links them).
    phone = await (await client.get("/simulator/api/conversation?wa_id=15551234567")).json()
    assert phone["entries"] == []


async def test_the_promo_goes_to_the_bsuid_until_the_username_customer_opts_out(simulator, fake_graph):
    client, _ = simulator
    [promo] = (await (await client.post("/simulator/api/promo", json=HIDDEN)).json())["entries"]
    assert promo["bubble"]["kind"] == "template"
    [sent] = fake_graph.state.sent
    assert sent["body"]["recipient"] == ANA_BSUID and "to" not in sent["body"]
    with transaction() as conn:
        record_opt_out(conn, ANA_BSUID, "meta_preferences", None, NOW)
    note = (await (await client.post("/simulator/api/promo", json=HIDDEN)).json())["entries"][-1]
    assert note["direction"] == "note" and "opted out" in note["bubble"]["text"]
    assert len(fake_graph.state.sent) == 1


@pytest.mark.parametrize(
    "customer",
    [
        {"user_id": "de.7730551842193"},  # not as WhatsApp sends it
        {"user_id": "US.ENT.11815799212886844830"},  # a parent BSUID is not a sender's user_id here
        {"user_id": ANA_BSUID, "username": "a b"},
        {"user_id": ANA_BSUID, "username": "x" * 36},
    ],
)
async def test_bad_username_customers_are_400(simulator, customer):
    client, bot = simulator
    body = {**customer, "name": "Ana", "action": {"type": "text", "text": "hi"}}
    assert (await client.post("/simulator/api/send", json=body)).status == 400
    assert bot.webhooks == []


async def test_the_simulator_page_keeps_the_switch_and_the_bsuid_in_its_address(simulator):
    client, _ = simulator
    html = await (
        await client.get(f"/simulator?user_id={ANA_BSUID}&username=ana.example&wa_id=15551234567")
    ).text()
    assert 'id="hide_phone" name="hide_phone" checked' in html
    assert 'id="user_id" name="user_id"' in html and f'value="{ANA_BSUID}"' in html
    assert f'href="/customers/{ANA_BSUID}"' in html
    plain = await (await client.get("/simulator?wa_id=15551234567")).text()
    assert 'name="hide_phone">' in plain and '<fieldset id="username-customer" disabled hidden>' in plain
