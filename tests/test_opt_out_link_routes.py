"""The opt-out link page on the real WhatsApp channel (Sanic) and a real database.

Only a confirmed POST with the page's own CSRF value writes, and only OPT_OUT with source `link`;
every bad token, a GET (a link preview), a "keep" and a second confirm write nothing.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sanic import Sanic

from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.broadcast.states import DeliveryState
from bot.db import transaction
from bot.opt_out_link.routes import is_cross_site
from bot.opt_out_link.settings import LinkSettings
from bot.opt_out_link.texts import texts_for
from bot.opt_out_link.token import LinkClaim, csrf_value, issue
from bot.store.customers import profile, remember_language
from bot.store.identifiers import parse_human
from bot.store.identities import ensure, identify
from bot.store.marketing_consent import may_send_marketing
from bot.store.timestamps import now
from tests.whatsapp_app import make_app

SECRET = b"link-secret-for-tests-0123456789"
PAGE = "/webhooks/whatsapp/opt-out/"
PHONE = "34612345678"
BSUID = "ES.88123456789012"


@pytest.fixture
def app(sqlite_url: str) -> Sanic:
    # Nothing is sent from these pages: the Graph API address is never called.
    app, _ = make_app("http://127.0.0.1:9/v21.0", link=LinkSettings(SECRET, 30, "https://bot.acme.test"))
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
            deliveries.finish(conn, broadcast_id, raw, DeliveryState.SENT, now(), wamid=f"wamid.{raw}")
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


async def test_the_page_speaks_the_customers_language_and_the_opt_out_keeps_what_it_showed(
    app: Sanic,
) -> None:
    ids = sent_broadcast(PHONE, language="en_US")  # an English template to a customer who writes German
    with transaction() as conn:
        assert remember_language(conn, PHONE, "de")
    token = token_for(ids[PHONE])
    shown = await get(app, token)
    question = texts_for("de").question.format(business="Acme Store")
    assert question in shown.text and 'lang="de"' in shown.text
    await post(app, token, {"csrf": csrf_of(shown.text), "choice": "stop"})
    (event,) = history_of(PHONE)
    evidence = event["evidence"]
    assert evidence["language"] == "de"
    assert evidence["request"]["words"] == "opt-out link of broadcast b-es (template promo_offer)"
    assert evidence["request"]["message_id"] == f"wamid.{PHONE}"
    assert (evidence["question"]["response"], evidence["question"]["text"]) == ("opt_out_link_page", question)
    assert evidence["question"]["buttons"] == [texts_for("de").confirm, texts_for("de").keep]
    assert evidence["answer"]["words"] == texts_for("de").confirm


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


async def test_a_link_sent_before_a_merge_opts_out_the_merged_customer(app: Sanic) -> None:
    with transaction() as conn:
        older = ensure(conn, BSUID)[0]
    ids = sent_broadcast(PHONE)
    with transaction() as conn:  # a status of our message names both: one person (docs/usernames.md)
        survivor = identify(conn, [parse_human(PHONE), parse_human(BSUID)], "status_pair", at=None)
    assert survivor.id == older.id != ids[PHONE]
    token = token_for(ids[PHONE])
    done = await post(app, token, {"csrf": csrf_of((await get(app, token)).text), "choice": "stop"})
    assert done.status == 200 and texts_for("es").done_title in done.text
    assert [t["source"] for t in tags_of(BSUID)] == ["link"] == [t["source"] for t in tags_of(PHONE)]
    with transaction() as conn:
        assert not may_send_marketing(conn, PHONE) and not may_send_marketing(conn, BSUID)


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


@pytest.mark.parametrize(
    ("fetch_site", "origin", "refused"),
    [
        ("same-origin", "https://bot.acme.test", False),
        ("", None, False),  # an older browser, or a client that sends neither
        ("same-origin", "null", False),  # a browser that withholds the origin on its own page
        ("", "null", True),
        ("cross-site", "null", True),
        ("same-site", "null", True),
        ("cross-site", "https://bot.acme.test", True),
        ("", "https://evil.example", True),
        ("", "https://bot.acme.test.evil.example", True),
    ],
)
def test_which_posts_count_as_another_site(fetch_site: str, origin: str | None, refused: bool) -> None:
    assert is_cross_site(fetch_site, origin, "bot.acme.test") is refused


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
        assert response.headers["referrer-policy"] == "same-origin"


async def test_an_unknown_token_page_speaks_the_browser_language(app: Sanic) -> None:
    page = await get(app, "bad", **{"accept-language": "de-DE,de;q=0.9,en;q=0.8"})
    assert page.status == 404 and texts_for("de").invalid_title in page.text


# --- an outsider's attempts: each gets a clear page and a 4xx, and writes nothing -----------------


def assert_refusal_page(response: Any, status: int) -> None:
    assert response.status == status
    assert "<h1>" in response.text and 'name="csrf"' not in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_a_payload_altered_to_name_another_customer_is_refused(app: Sanic) -> None:
    ids = sent_broadcast(PHONE, "34699999999")
    mac = token_for(ids[PHONE]).split(".")[1]
    other_payload = token_for(ids["34699999999"]).split(".")[0]
    altered = f"{other_payload}.{mac}"
    assert_refusal_page(await get(app, altered), 404)
    assert_refusal_page(
        await post(app, altered, {"csrf": csrf_value(SECRET, altered), "choice": "stop"}), 404
    )
    assert tags_of(PHONE) == [] and tags_of("34699999999") == []


async def test_the_csrf_value_of_one_link_does_not_confirm_another(app: Sanic) -> None:
    ids = sent_broadcast(PHONE, "34699999999")
    mine, theirs = token_for(ids[PHONE]), token_for(ids["34699999999"])
    csrf_of_mine = csrf_of((await get(app, mine)).text)
    assert_refusal_page(await post(app, theirs, {"csrf": csrf_of_mine, "choice": "stop"}), 403)
    assert tags_of(PHONE) == [] and tags_of("34699999999") == []


@pytest.mark.parametrize(
    "agent",
    [
        "WhatsApp/2.24.6.77 A",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "TelegramBot (like TwitterBot)",
    ],
)
async def test_link_previews_see_the_question_and_write_nothing(app: Sanic, agent: str) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    shown = await get(app, token, **{"user-agent": agent})
    assert shown.status == 200 and 'name="csrf"' in shown.text
    _, head = await app.asgi_client.head(PAGE + token, headers={"user-agent": agent})
    assert head.status == 200 and head.content == b""
    assert head.headers["x-robots-tag"] == "noindex, nofollow"
    assert tags_of(PHONE) == [] and history_of(PHONE) == []


async def test_head_of_a_bad_link_is_refused_like_get(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    _, head = await app.asgi_client.head(PAGE + token_for(ids[PHONE], ttl=-1))
    assert head.status == 410 and head.content == b""
    _, head = await app.asgi_client.head(PAGE + "not-a-token")
    assert head.status == 404


@pytest.mark.parametrize("path", ["%FF%FE", "abc.%C3%28", "a" * 20_000, "%00"])
async def test_odd_paths_get_the_invalid_page(app: Sanic, path: str) -> None:
    sent_broadcast(PHONE)
    _, response = await app.asgi_client.get(PAGE + path)
    assert_refusal_page(response, 404)
    assert tags_of(PHONE) == []


async def test_a_path_climbing_out_of_the_page_reaches_nothing(app: Sanic) -> None:
    # Sanic decodes %2F before routing: this is no opt-out path, and no other route takes it.
    _, response = await app.asgi_client.get(PAGE + "..%2F..%2Fwebhook")
    assert response.status == 404


async def test_a_valid_token_with_junk_after_it_is_refused(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    for path in (token + "%FF", token + "A", token + ".x"):
        _, response = await app.asgi_client.get(PAGE + path)
        assert_refusal_page(response, 404)
    assert tags_of(PHONE) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"csrf=\xff\xfe&choice=stop", 400),  # not UTF-8: never from our page
        (b"\xff\xfe\xfd", 400),
        (None, 400),  # the page's CSRF value, and a choice that is not UTF-8
        (b"csrf=%FF%FE&choice=stop", 403),  # UTF-8, percent-encoding bytes that are not
    ],
)
async def test_a_form_that_is_not_utf8_writes_nothing(app: Sanic, body: bytes | None, status: int) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    if body is None:
        body = f"csrf={csrf_of((await get(app, token)).text)}&choice=".encode() + b"\xff"
    _, response = await app.asgi_client.post(
        PAGE + token, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_refusal_page(response, status)
    assert tags_of(PHONE) == []


async def test_a_replayed_confirm_after_keep_or_stop_adds_nothing(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    form = {"csrf": csrf_of((await get(app, token)).text), "choice": "stop"}
    for _ in range(3):
        assert (await post(app, token, form)).status == 200
    assert len(tags_of(PHONE)) == 1 and len(history_of(PHONE)) == 1
    # A "keep" replayed after the opt-out changes nothing either.
    assert (await post(app, token, {**form, "choice": "keep"})).status == 200
    assert len(tags_of(PHONE)) == 1 and len(history_of(PHONE)) == 1


async def test_a_refused_confirmation_says_what_to_do_in_the_browser_language(app: Sanic) -> None:
    ids = sent_broadcast(PHONE)
    token = token_for(ids[PHONE])
    refused = await post(app, token, {"choice": "stop"}, **{"accept-language": "pt-BR,pt;q=0.9"})
    assert refused.status == 403
    assert texts_for("pt").retry_title in refused.text and 'lang="pt"' in refused.text
