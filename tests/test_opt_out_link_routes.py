"""The opt-out link page on the real WhatsApp channel (Sanic) and a real database.

Only a confirmed POST with the page's own CSRF value writes, and only OPT_OUT with source `link`;
every bad token, a GET (a link preview), a "keep" and a second confirm write nothing.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from rasa.core.channels.channel import register
from sanic import Sanic

from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.db import transaction
from bot.opt_out_link.settings import LinkSettings
from bot.opt_out_link.texts import texts_for
from bot.opt_out_link.token import LinkClaim, issue
from bot.store.customers import profile
from bot.store.identities import ensure
from bot.store.timestamps import now
from bot.whatsapp.channel import WhatsAppInput
from bot.whatsapp.config import WhatsAppConfig

SECRET = b"link-secret-for-tests-0123456789"
PAGE = "/webhooks/whatsapp/opt-out/"
PHONE = "34612345678"
BSUID = "ES.88123456789012"


@pytest.fixture
def app(sqlite_url: str) -> Sanic:
    config = WhatsAppConfig.load(
        {"verify_token": "v", "app_secret": "s", "phone_number_id": "106540352242922"}, environ={}
    )
    app = Sanic(f"test_{uuid.uuid4().hex}")
    register(
        [WhatsAppInput(config, LinkSettings(SECRET, 30, "https://bot.acme.test"))], app, route="/webhooks/"
    )
    return app


def sent_broadcast(*who: str, broadcast_id: str = "b-es", language: str = "es") -> dict[str, int]:
    """A broadcast of promo_offer that reached each customer; their row ids by identifier."""
    ids = {}
    with transaction() as conn:
        for raw in who:
            ids[raw] = ensure(conn, raw)[0].id
        deliveries.create(
            conn, broadcast_id, "promo_offer", language, ["20%"], Audience(), 80.0, len(who), now()
        )
        for raw in who:
            assert deliveries.claim(conn, broadcast_id, raw, now()) is not None
            deliveries.finish(conn, broadcast_id, raw, deliveries.SENT, now(), wamid=f"wamid.{raw}")
    return ids


def token_for(customer_id: int, broadcast_id: str = "b-es", secret: bytes = SECRET, ttl: int = 3600) -> str:
    return issue(secret, LinkClaim(customer_id, broadcast_id, int(time.time()) + ttl))


def tags_of(who: str) -> list[dict[str, Any]]:
    with transaction() as conn:
        found = profile(conn, who)
    return [] if found is None else found["tags"]


def history_of(who: str) -> list[dict[str, Any]]:
    with transaction() as conn:
        found = profile(conn, who)
    return [] if found is None else found["consent_history"]


async def get(app: Sanic, token: str, **headers: str) -> Any:
    _, response = await app.asgi_client.get(PAGE + token, headers=headers)
    return response


async def post(app: Sanic, token: str, form: dict[str, str], **headers: str) -> Any:
    _, response = await app.asgi_client.post(PAGE + token, data=form, headers=headers)
    return response


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def test_confirming_on_the_page_writes_opt_out_with_source_link(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])

    shown = await get(app, token)
    assert shown.status == 200
    assert texts_for("es").question.format(business="Acme Store") in shown.text  # the broadcast's language
    assert tags_of(PHONE) == []  # a GET, e.g. a link preview, writes nothing

    done = await post(app, token, {"csrf": csrf_of(shown.text), "choice": "stop"})
    assert done.status == 200
    assert texts_for("es").done_title in done.text
    (tag,) = tags_of(PHONE)
    assert (tag["name"], tag["source"], tag["message_id"]) == ("OPT_OUT", "link", f"wamid.{PHONE}")
    (event,) = history_of(PHONE)
    assert '"broadcast": "b-es"' in event["detail"] and '"template": "promo_offer"' in event["detail"]


async def test_confirming_twice_is_harmless_and_says_so(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    csrf = csrf_of((await get(app, token)).text)
    assert (await post(app, token, {"csrf": csrf, "choice": "stop"})).status == 200
    again = await post(app, token, {"csrf": csrf, "choice": "stop"})
    assert again.status == 200
    assert texts_for("es").already_title in again.text
    assert texts_for("es").already_title in (await get(app, token)).text
    assert len(tags_of(PHONE)) == 1 and len(history_of(PHONE)) == 1


async def test_keep_writes_nothing(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    kept = await post(app, token, {"csrf": csrf_of((await get(app, token)).text), "choice": "keep"})
    assert kept.status == 200 and texts_for("es").kept_title in kept.text
    assert tags_of(PHONE) == [] and history_of(PHONE) == []


async def test_a_customer_known_only_by_a_bsuid_can_opt_out_by_link(app: Sanic) -> None:
    ids = sent_broadcast(BSUID)
    token = token_for(ids[BSUID])
    await post(app, token, {"csrf": csrf_of((await get(app, token)).text), "choice": "stop"})
    assert [t["source"] for t in tags_of(BSUID)] == ["link"]


@pytest.mark.parametrize(
    ("make_token", "status"),
    [
        (lambda ids: token_for(ids[PHONE], secret=b"another-installation-secret-000"), 404),  # foreign
        (lambda ids: token_for(ids[PHONE], ttl=-1), 410),  # expired
        (lambda ids: token_for(ids[PHONE])[:-2] + "AA", 404),  # altered MAC
        (lambda ids: token_for(ids[PHONE] + 1000), 404),  # genuine, but nobody we sent to
        (lambda ids: token_for(ids[PHONE], broadcast_id="b-other"), 404),  # genuine, unknown broadcast
        (lambda ids: "not-a-token", 404),
        (lambda ids: "x" * 600, 404),
    ],
)
async def test_bad_tokens_get_a_clear_page_and_write_nothing(app: Sanic, make_token, status: int) -> None:
    ids = sent_broadcast(PHONE)
    token = make_token(ids)
    page = await get(app, token)
    assert page.status == status
    assert "<h1>" in page.text and 'name="csrf"' not in page.text
    # Even with a CSRF value computed for it, a POST of a bad token writes nothing.
    from bot.opt_out_link.token import csrf_value

    posted = await post(app, token, {"csrf": csrf_value(SECRET, token), "choice": "stop"})
    assert posted.status == status
    assert tags_of(PHONE) == []


async def test_a_token_for_one_customer_cannot_opt_out_another(app: Sanic) -> None:
    ids = sent_broadcast(PHONE, "34699999999")
    token = token_for(ids[PHONE])
    await post(app, token, {"csrf": csrf_of((await get(app, token)).text), "choice": "stop"})
    assert tags_of("34699999999") == []
    assert len(tags_of(PHONE)) == 1


@pytest.mark.parametrize(
    ("form", "headers", "status"),
    [
        ({"choice": "stop"}, {}, 403),  # no CSRF value
        ({"csrf": "forged", "choice": "stop"}, {}, 403),
        ({"csrf": None, "choice": "stop"}, {"sec-fetch-site": "cross-site"}, 403),
        ({"csrf": None, "choice": "stop"}, {"origin": "https://evil.example"}, 403),
        ({"csrf": None, "choice": "stop"}, {"origin": "null"}, 403),
        ({"csrf": None, "choice": "maybe"}, {}, 400),
        ({"csrf": None}, {}, 400),
    ],
)
async def test_a_post_that_did_not_come_from_the_page_writes_nothing(
    app: Sanic, form: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    if "csrf" in form and form["csrf"] is None:
        form = {**form, "csrf": csrf_of((await get(app, token)).text)}
    elif "csrf" not in form and "choice" not in form:
        form = {"csrf": csrf_of((await get(app, token)).text)}
    assert (await post(app, token, form, **headers)).status == status
    assert tags_of(PHONE) == []


async def test_a_post_from_our_own_origin_is_accepted(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    csrf = csrf_of((await get(app, token)).text)
    done = await post(
        app,
        token,
        {"csrf": csrf, "choice": "stop"},
        origin="https://bot.acme.test",
        **{"sec-fetch-site": "same-origin"},
    )
    assert done.status == 200 and len(tags_of(PHONE)) == 1


async def test_the_page_sets_no_cookie_and_is_not_cached_or_framed(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    for response in (
        await get(app, token),
        await get(app, "bad"),
        await post(app, token, {"choice": "stop"}),
    ):
        assert "set-cookie" not in {k.lower() for k in response.headers}
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"


async def test_an_unknown_token_page_speaks_the_browser_language(app: Sanic) -> None:
    page = await get(app, "bad", **{"accept-language": "de-DE,de;q=0.9,en;q=0.8"})
    assert page.status == 404 and texts_for("de").invalid_title in page.text
