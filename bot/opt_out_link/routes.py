"""`/webhooks/whatsapp/opt-out/<token>`: the page a template's "Unsubscribe" button opens.

Served by the WhatsApp channel's blueprint, so the one reverse-proxy rule that exposes the webhook
exposes this page and nothing else. GET (and HEAD) only shows (link previews fetch URLs: a GET never opts
anyone out); the confirm form POSTs back with a CSRF value derived from the token, and a POST from
another site (Sec-Fetch-Site / Origin) is refused. No cookies are set, nothing is cached, the page
is not indexed and tells no other site its address (Referrer-Policy).

Answers: 200 for the question and every outcome; 404 for a token that is not ours or names a
customer or broadcast we do not know (the same page for all, so the page tells an attacker
nothing); 410 for an expired link; 403 for a POST without the page's CSRF value or from another
site; 400 for a POST without a choice. Only a POST with `choice=stop` writes, and only OPT_OUT with
the source `link` (`store`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.db import run_sync
from bot.opt_out_link import page, store
from bot.opt_out_link.settings import LinkSettings
from bot.opt_out_link.texts import PageTexts, language_of, texts_for
from bot.opt_out_link.token import (
    BadToken,
    LinkClaim,
    TokenProblem,
    csrf_matches,
    csrf_value,
    verify,
)

logger = logging.getLogger(__name__)

PATH = "/opt-out/<token>"

_HEADERS = {
    "Cache-Control": "no-store",
    # Not no-referrer: under it, browsers post the form with `Origin: null` (Fetch standard),
    # which looks like another site. same-origin still tells no other site the token.
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def add_routes(blueprint: Blueprint, settings: LinkSettings, business: str) -> None:
    # HEAD too: link previews may ask it first; it answers as GET would, without the body.
    @blueprint.route(PATH, methods=["GET", "HEAD"])
    async def show(request: Request, token: str) -> HTTPResponse:
        claim, refusal = _check(settings, business, token, request)
        if refusal is not None:
            return refusal
        target = await run_sync(store.link_target, claim)
        if target is None:
            return _invalid(request, business)
        texts, lang = _texts(target.language)
        if target.opted_out_at is not None:
            return _already(texts, lang, business, target.opted_out_at)
        return _html(page.confirm_page(texts, lang, business, csrf_value(settings.secret, token)))

    @blueprint.post(PATH)
    async def confirm(request: Request, token: str) -> HTTPResponse:
        claim, refusal = _check(settings, business, token, request)
        if refusal is not None:
            return refusal
        if _cross_site(request, settings.public_url):
            logger.warning("opt-out link: refused a POST from another site")
            return _retry(request, business, 403)
        form = _form(request.body)
        if form is None:
            return _retry(request, business, 400)
        if not csrf_matches(settings.secret, token, form.get("csrf", "")):
            return _retry(request, business, 403)
        choice = form.get("choice")
        if choice not in ("stop", "keep"):
            return _retry(request, business, 400)
        target = await run_sync(store.link_target, claim)
        if target is None:
            return _invalid(request, business)
        texts, lang = _texts(target.language)
        if choice == "keep":
            return _html(page.message_page(lang, texts.kept_title, texts.kept.format(business=business)))
        if target.opted_out_at is not None:
            return _already(texts, lang, business, target.opted_out_at)
        await run_sync(store.opt_out, target, store.link_evidence(target, texts, lang, business))
        logger.info("opt-out through the link of broadcast %s", target.broadcast_id)
        return _html(page.message_page(lang, texts.done_title, texts.done.format(business=business)))


def _check(
    settings: LinkSettings, business: str, token: str, request: Request
) -> tuple[LinkClaim, None] | tuple[None, HTTPResponse]:
    """The token's claim, or the page that refuses it (410 expired, 404 anything else)."""
    try:
        return verify(settings.secret, token, int(time.time())), None
    except BadToken as bad:
        logger.info("opt-out link refused: %s token", bad.problem.value)
        if bad.problem is TokenProblem.EXPIRED:
            texts, lang = _texts(_accepted_language(request))
            text = texts.expired.format(days=settings.ttl_days, business=business)
            return None, _html(page.message_page(lang, texts.expired_title, text), 410)
        return None, _invalid(request, business)


def _invalid(request: Request, business: str) -> HTTPResponse:
    texts, lang = _texts(_accepted_language(request))
    return _html(page.message_page(lang, texts.invalid_title, texts.invalid.format(business=business)), 404)


def _retry(request: Request, business: str, status: int) -> HTTPResponse:
    """A confirmation we cannot accept; checked before the token's customer is looked up, so in
    the browser's language."""
    texts, lang = _texts(_accepted_language(request))
    return _html(page.message_page(lang, texts.retry_title, texts.retry.format(business=business)), status)


def _already(texts: PageTexts, lang: str, business: str, opted_out_at: datetime) -> HTTPResponse:
    text = texts.already.format(business=business, date=opted_out_at.date().isoformat())
    return _html(page.message_page(lang, texts.already_title, text))


def _texts(code: str | None) -> tuple[PageTexts, str]:
    return texts_for(code), language_of(code)


def _accepted_language(request: Request) -> str | None:
    """Before we know whose link it is, the browser's first language is the best guess."""
    header = request.headers.get("accept-language", "")
    return header.split(",")[0].split(";")[0].strip() or None


def _form(body: bytes) -> dict[str, str] | None:
    """The form's fields (the first value of each), or None when the body is not UTF-8: our page
    never sends that, and Sanic's own parser would log a traceback for every such POST."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return {name: values[0] for name, values in parse_qs(text).items()}


def _cross_site(request: Request, public_url: str) -> bool:
    ours = urlsplit(public_url).netloc if public_url else request.host
    return is_cross_site(request.headers.get("sec-fetch-site", ""), request.headers.get("origin"), ours)


def is_cross_site(fetch_site: str, origin: str | None, ours: str) -> bool:
    """Pure: a form posted from another site, as the browser tells it (Sec-Fetch-Site, Origin).

    An opaque Origin ("null": a sandboxed frame, a data: URL, but also a page whose referrer
    policy is no-referrer, or a browser told to send none) counts as another site unless the
    browser itself says the POST came from our own page: no page can set Sec-Fetch-Site."""
    if fetch_site == "cross-site":
        return True
    if not origin:
        return False
    if origin == "null":
        return fetch_site != "same-origin"
    return urlsplit(origin).netloc != ours


def _html(body: str, status: int = 200) -> HTTPResponse:
    return response.html(body, status=status, headers=_HEADERS)
