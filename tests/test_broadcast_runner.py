"""The command's send loop against stand-ins for Rasa: each pending delivery triggered once, the
work shared among replicas, and an early stop when deliveries keep coming back untouched."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.broadcast.runner import MAX_STALLED, RasaApi, RasaUnavailable, send_pending
from bot.db import transaction
from bot.store.customers import ensure_customer
from bot.store.identities import conversation_id

AT = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
NUMBERS = [f"49151000{i:05d}" for i in range(30)]


@pytest.fixture
def broadcast(sqlite_url) -> str:
    with transaction() as conn:
        for wa_id in NUMBERS:
            ensure_customer(conn, wa_id)
        deliveries.create(conn, "b-1", "promo_offer", "en_US", [], Audience(), 80.0, len(NUMBERS), AT)
    return "b-1"


def sends(conn, broadcast_id: str, wa_id: str) -> None:
    """What action_send_broadcast does when WhatsApp accepts the message."""
    if deliveries.claim(conn, broadcast_id, wa_id, AT):
        deliveries.finish(conn, broadcast_id, wa_id, "sent", AT, f"wamid.{wa_id}")


def is_throttled(conn, broadcast_id: str, wa_id: str) -> None:
    if deliveries.claim(conn, broadcast_id, wa_id, AT):
        deliveries.finish(conn, broadcast_id, wa_id, "pending", AT, None, 130429, "Rate limit hit")


class FakeRasa:
    """/status and trigger_intent; the "action" runs `behaviour` in the customer store."""

    def __init__(self, behaviour: Callable, token: str = "token") -> None:
        self.behaviour = behaviour
        self.token = token
        self.triggers: list[tuple[str, dict, dict]] = []

    def app(self) -> web.Application:
        async def status(request: web.Request) -> web.Response:
            ok = request.query.get("token") == self.token
            return web.json_response({}, status=200 if ok else 401)

        async def trigger(request: web.Request) -> web.Response:
            body = await request.json()
            wa_id = request.match_info["wa_id"]
            self.triggers.append((wa_id, dict(request.query), body))
            with transaction() as conn:
                self.behaviour(conn, body["entities"]["broadcast_id"], wa_id)
            return web.json_response({"tracker": {}})

        app = web.Application()
        app.router.add_get("/status", status)
        app.router.add_post("/conversations/{wa_id}/trigger_intent", trigger)
        return app


@pytest.fixture
async def serve() -> AsyncIterator[Callable]:
    servers: list[TestServer] = []

    async def start(fake: FakeRasa) -> RasaApi:
        server = TestServer(fake.app(), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return RasaApi(str(server.make_url("")).rstrip("/"), "token")

    yield start
    for server in servers:
        await server.close()


async def test_every_pending_delivery_is_triggered_once_across_replicas(broadcast, serve):
    first, second = FakeRasa(sends), FakeRasa(sends)
    apis = [await serve(first), await serve(second)]
    progress = io.StringIO()
    tally = await send_pending(broadcast, apis, rate=1000, concurrency=4, progress=progress)
    assert (tally.sent, tally.attempted, tally.stopped) == (30, 30, None)
    # Each customer's conversation (its key), found from the delivery by conversation_id.
    triggered = [key for key, _, _ in first.triggers + second.triggers]
    with transaction() as conn:
        assert sorted(triggered) == sorted(conversation_id(conn, number) for number in NUMBERS)
    assert first.triggers and second.triggers
    _, query, body = first.triggers[0]
    assert query == {"output_channel": "whatsapp", "token": "token", "include_events": "NONE"}
    assert body == {"name": "EXTERNAL_send_broadcast", "entities": {"broadcast_id": "b-1"}}
    assert progress.getvalue().splitlines()[-1].startswith("sent 30, skipped (opted out) 0, failed 0 | 30/30")

    again = await send_pending(broadcast, apis, rate=1000, concurrency=4, progress=io.StringIO())
    assert again.attempted == 0  # nothing pending: nothing triggered
    assert len(first.triggers + second.triggers) == 30


async def test_the_run_stops_when_the_action_never_claims(broadcast, serve):
    rasa = FakeRasa(lambda conn, broadcast_id, wa_id: None)  # e.g. the action server is down
    tally = await send_pending(
        broadcast, [await serve(rasa)], rate=1000, concurrency=1, progress=io.StringIO()
    )
    assert tally.stopped is not None and "not attempted" in tally.stopped
    assert tally.untouched == MAX_STALLED
    with transaction() as conn:
        assert deliveries.pending_counts(conn, broadcast) == (30, 0)  # all left for a resume


async def test_throttled_deliveries_are_handed_back_and_counted(broadcast, serve):
    rasa = FakeRasa(is_throttled)
    tally = await send_pending(
        broadcast, [await serve(rasa)], rate=1000, concurrency=2, progress=io.StringIO()
    )
    assert (tally.throttled, tally.sent, tally.stopped) == (30, 0, None)  # throttling is not a stall


async def test_a_wrong_token_is_reported_before_anything_is_triggered(broadcast, serve):
    rasa = FakeRasa(sends, token="another")
    with pytest.raises(RasaUnavailable, match="refused the token"):
        await send_pending(broadcast, [await serve(rasa)], rate=1000, concurrency=1, progress=io.StringIO())
    assert rasa.triggers == []
