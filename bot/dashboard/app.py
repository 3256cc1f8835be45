"""The dashboard's aiohttp app: thin handlers around queries (off the event loop) and pages.

Routes (all behind the admin token except /login, /health and /static/):
- GET  /customers  /customers/<wa_id>  /opt-outs  /broadcasts  /broadcasts/<id>  /models
- GET  /simulator, GET /simulator/api/conversation?wa_id= (or ?user_id=&username= for a username
  customer whose number is hidden), POST /simulator/api/send, POST /simulator/api/promo
- GET|POST /login, POST /logout
No route writes consent: the only POSTs log in and out, and drive the simulated customer (whose
webhooks go through the bot exactly as WhatsApp's do).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bot import PROJECT_ROOT
from bot.business import business_name
from bot.dashboard import auth, pages, queries
from bot.dashboard.conversation import conversation_lines, fetch_tracker_events, with_broadcasts
from bot.dashboard.html import Safe
from bot.dashboard.models_page import models_page
from bot.dashboard.simulator import Simulator, SimulatorSettings, simulated_customer
from bot.dashboard.stats import buckets, count_into, period_for
from bot.db import run_sync, transaction
from bot.publish.records import LOG_NAME, read_log
from bot.store.customers import profile

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Pages hold personal data: never cached, never framed, and only our own scripts and styles run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PUBLIC_PATHS = frozenset({"/login", "/health"})


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    token: str  # the Rasa auth token: the admin secret
    rasa_url: str  # http://127.0.0.1:<RASA_PORT>
    simulator: SimulatorSettings | None = None
    simulator_off_reason: str = "the bot runs with real WhatsApp credentials"
    # HTTPS reverse proxy in front (README): believe its X-Forwarded-Proto when setting `Secure`.
    trust_proxy: bool = False
    secure_cookie: bool = False  # always mark the session cookie `Secure`
    # `python -m bot publish`'s log (MODELS_DIR/published/publications.jsonl)
    publications: Path = PROJECT_ROOT / "models" / "published" / LOG_NAME


CONFIG = web.AppKey("config", DashboardConfig)
SESSION = web.AppKey("session", aiohttp.ClientSession)
SIMULATOR = web.AppKey("simulator", Simulator)


def _read(func: Callable[..., T], *args: Any) -> T:
    """One short read-only transaction (in a worker thread, see `run_sync`)."""
    with transaction() as conn:
        return func(conn, *args)


def _html(body: Safe, status: int = 200) -> web.Response:
    return web.Response(text=body, content_type="text/html", charset="utf-8", status=status)


def _page(request: web.Request, title: str, body: Safe, status: int = 200) -> web.Response:
    config = request.app[CONFIG]
    current = "/" + request.path.strip("/").split("/")[0]
    return _html(pages.layout(title, body, current, simulator=config.simulator is not None), status)


# --- middlewares ---------------------------------------------------------------------------------


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and errors are responses too
        _add_security_headers(exc)
        raise
    _add_security_headers(response)
    return response


def _add_security_headers(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[CONFIG].token
    if request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
        return await handler(request)
    if request.method not in ("GET", "HEAD") and auth.cross_site(request.headers, request.host):
        return web.json_response({"error": "cross-site request refused"}, status=403)
    if "token" in request.query:
        # Exchange the token in the address for a cookie, and take it out of the address bar.
        if not auth.token_matches(request.query["token"], token):
            return _html(pages.login_page(request.path, "That token is not right."), status=401)
        query = {k: v for k, v in request.query.items() if k != "token"}
        response = web.HTTPSeeOther(auth.local_path(request.rel_url.with_query(query).raw_path_qs))
        _set_session(response, request)
        raise response
    if auth.session_valid(request.cookies.get(auth.COOKIE), token, _unix_now()):
        return await handler(request)
    if request.path.startswith("/simulator/api/") or request.method not in ("GET", "HEAD"):
        return web.json_response({"error": "log in first"}, status=401)
    raise web.HTTPSeeOther("/login?" + urlencode({"next": request.rel_url.raw_path_qs}))


def _unix_now() -> int:
    return int(datetime.now(timezone.utc).timestamp())


def _set_session(response: web.StreamResponse, request: web.Request) -> None:
    config = request.app[CONFIG]
    secure = auth.cookie_secure(
        request.scheme, request.headers.get("X-Forwarded-Proto"), config.trust_proxy, config.secure_cookie
    )
    response.set_cookie(
        auth.COOKIE,
        auth.session_value(config.token, _unix_now()),
        max_age=auth.SESSION_MAX_AGE,
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/",
    )


# --- handlers ------------------------------------------------------------------------------------


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def login_form(request: web.Request) -> web.Response:
    return _html(pages.login_page(auth.local_path(request.query.get("next"), "/customers")))


async def login(request: web.Request) -> web.Response:
    if auth.cross_site(request.headers, request.host):
        return web.json_response({"error": "cross-site request refused"}, status=403)
    form = await request.post()
    target = auth.local_path(str(form.get("next", "")), "/customers")
    if not auth.token_matches(str(form.get("token", "")), request.app[CONFIG].token):
        return _html(pages.login_page(target, "That token is not right."), status=401)
    response = web.HTTPSeeOther(target)
    _set_session(response, request)
    raise response


async def logout(_: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(auth.COOKIE, path="/")
    raise response


async def home(_: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/customers")


async def customers_list(request: web.Request) -> web.Response:
    search = request.query.get("q", "")[:100]
    tag = request.query.get("tag", "")[:64]
    try:
        number = int(request.query.get("page", "1"))
    except ValueError:
        number = 1
    page = await run_sync(_read, queries.customer_page, search, tag, number)
    tags = await run_sync(_read, queries.tag_names)
    return _page(request, "Customers", pages.customers_page(page, search, tag, tags))


async def customer_profile(request: web.Request) -> web.Response:
    wa_id = request.match_info["wa_id"]
    try:
        found = await run_sync(_read, profile, wa_id)
    except ValueError:
        found = None
    if found is None:
        return _page(
            request, "Not found", pages.message_page("Customer not found", f"No customer {wa_id}."), 404
        )
    config = request.app[CONFIG]
    events = await fetch_tracker_events(request.app[SESSION], config.rasa_url, config.token, found["key"])
    lines = None
    if events is not None:
        received = await run_sync(_read, queries.broadcasts_received, found["key"])
        lines = with_broadcasts(conversation_lines(events), received)
    records = (
        []
        if lines is not None
        else await run_sync(_read, queries.delivery_records, found["key"], found["wa_id"])
    )
    return _page(
        request, found["name"] or found["wa_id"] or found["key"], pages.profile_page(found, lines, records)
    )


async def opt_outs(request: web.Request) -> web.Response:
    period = period_for(request.query.get("period"))
    bucket_list = buckets(period, datetime.now(timezone.utc).date())
    since = datetime.combine(bucket_list[0].start, time.min, timezone.utc)
    moments = await run_sync(_read, queries.opt_out_times, since)
    totals = await run_sync(_read, queries.opt_out_totals)
    body = pages.opt_outs_page(period, bucket_list, count_into(bucket_list, moments), totals)
    return _page(request, "Opt-outs", body)


async def broadcasts(request: web.Request) -> web.Response:
    reports = await run_sync(_read, queries.broadcast_reports)
    return _page(request, "Broadcasts", pages.broadcasts_page(reports))


async def broadcast(request: web.Request) -> web.Response:
    found = await run_sync(_read, queries.broadcast_report, request.match_info["broadcast_id"])
    if found is None:
        return _page(
            request, "Not found", pages.message_page("Broadcast not found", "No such broadcast."), 404
        )
    return _page(request, f"Broadcast {found[0].id}", pages.broadcast_page(*found))


async def published_model(request: web.Request) -> web.Response:
    history = await run_sync(read_log, request.app[CONFIG].publications)
    return _page(request, "Published model", models_page(history))


def _simulator(request: web.Request) -> Simulator:
    if SIMULATOR not in request.app:
        raise web.HTTPNotFound(
            text=f"The simulator is off: {request.app[CONFIG].simulator_off_reason}.",
            content_type="text/plain",
        )
    return request.app[SIMULATOR]


async def simulator_page(request: web.Request) -> web.Response:
    if SIMULATOR not in request.app:
        reason = f"The simulator is off: {request.app[CONFIG].simulator_off_reason}."
        return _page(request, "Simulator", pages.message_page("Simulator", reason), 404)
    # A new number (and BSUID) each visit is a new customer; the page keeps them in the address.
    query = request.query
    customer = pages.SimulatorCustomer(
        wa_id=query.get("wa_id") or f"1555{secrets.randbelow(10**7):07d}",
        name=query.get("name") or "Test Customer",
        hide_phone=bool(query.get("user_id")),
        user_id=query.get("user_id") or f"US.{secrets.randbelow(10**20):020d}",
        username=query.get("username") or "test.customer",
    )
    return _page(request, "Simulator", pages.simulator_page(business_name(), customer))


async def simulator_conversation(request: web.Request) -> web.Response:
    simulator = _simulator(request)
    try:
        snapshot = await simulator.timeline(simulated_customer(request.query))
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response({**snapshot, "bot_online": await simulator.bot_online()})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


async def simulator_send(request: web.Request) -> web.Response:
    simulator = _simulator(request)
    body = await _json_body(request)
    action = body.get("action")
    try:
        if not isinstance(action, dict):
            raise ValueError("action must be an object")
        snapshot = await simulator.send(simulated_customer(body), str(body.get("name", "")), action)
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response(snapshot)


async def simulator_promo(request: web.Request) -> web.Response:
    simulator = _simulator(request)
    body = await _json_body(request)
    try:
        snapshot = await simulator.send_promo(simulated_customer(body))
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response(snapshot)


# --- the app -------------------------------------------------------------------------------------


def build_app(config: DashboardConfig) -> web.Application:
    app = web.Application(middlewares=[security_headers, require_token], client_max_size=64 * 1024)
    app[CONFIG] = config

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession()
        if config.simulator is not None:
            app[SIMULATOR] = Simulator(config.simulator, app[SESSION])
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(client_session)
    app.router.add_get("/health", health)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", home)
    app.router.add_get("/customers", customers_list)
    app.router.add_get("/customers/{wa_id}", customer_profile)
    app.router.add_get("/opt-outs", opt_outs)
    app.router.add_get("/broadcasts", broadcasts)
    app.router.add_get("/broadcasts/{broadcast_id}", broadcast)
    app.router.add_get("/models", published_model)
    app.router.add_get("/simulator", simulator_page)
    app.router.add_get("/simulator/api/conversation", simulator_conversation)
    app.router.add_post("/simulator/api/send", simulator_send)
    app.router.add_post("/simulator/api/promo", simulator_promo)
    app.router.add_static("/static/", STATIC_DIR)
    return app
