"""A local stand-in for Meta's Graph API messages endpoint, for tests, benchmarks and the simulator.

It speaks the same protocol as `POST /<version>/<phone-number-id>/messages`: checks the bearer
token, takes the customer from `to` (a phone number) or `recipient` (a BSUID; `to` wins when both
are given, as at Meta), answers with a fresh wamid and the `contacts` Meta would, and records every
body it accepted. Control routes let a test script failures (`to` matches either field; 131062
means "this message type needs a phone number" and, as at Meta, hits `recipient` sends only):

- GET    /_fake/sent                      every accepted message, in order
- GET    /_fake/count                     how many: {"sent": n} (cheap to poll during a benchmark)
- DELETE /_fake/sent                      forget them (and any scripted failures)
- POST   /_fake/fail  {"code": 130429, "status": 429, "times": 2, "to": "<wa_id>" (optional)}
         the next `times` sends (to that recipient) fail with that Graph API error
- POST   /_fake/hold  {"hold": true}   accept and record sends but answer none until released
         ({"hold": false}): a sender killed meanwhile has requests out and no answers

With `FakeGraphState.status_webhooks` set (bench/broadcast_latency.py), it also does what WhatsApp
does after accepting a message: posts the status webhooks sent, delivered and read, signed with
the app secret, to the bot's webhook, one after the other.

Each record carries `received_at` (Unix seconds), for rate measurements.

Run on its own: `python -m bot.fake_graph_api --port 8090` (it expects WHATSAPP_ACCESS_TOKEN).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvloop
from aiohttp import web

from bot.settings import from_env
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER, sign

ERROR_TITLES = {
    130429: "Rate limit hit",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131050: "User has stopped receiving marketing messages",
    131056: "Pair rate limit hit",
    131062: "Business-scoped user ID recipients are not supported for this message",
    132001: "Template name does not exist in the translation",
}
NEEDS_PHONE_NUMBER = 131062


@dataclass
class ScriptedFailure:
    code: int
    status: int
    times: int
    to: str | None = None


@dataclass
class StatusWebhooks:
    """Where and how to send the status webhooks of accepted messages; `answers` counts the
    bot's HTTP statuses (0: no answer)."""

    url: str
    app_secret: str
    answers: dict[int, int] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def report(self, wamid: str, to: str, callback_data: str | None) -> None:
        task = asyncio.create_task(self._post_all(wamid, to, callback_data))
        self._tasks.add(task)  # a task nobody holds may be collected before it ran
        task.add_done_callback(self._tasks.discard)

    async def _post_all(self, wamid: str, to: str, callback_data: str | None) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        for status in ("sent", "delivered", "read"):
            body = meta.status(wamid, to, status, callback_data=callback_data)
            data = json.dumps(body).encode()
            headers = {HEADER: sign(data, self.app_secret), "Content-Type": "application/json"}
            try:
                async with self._session.post(self.url, data=data, headers=headers) as response:
                    await response.read()
                    answer = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                answer = 0
            self.answers[answer] = self.answers.get(answer, 0) + 1

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass
class FakeGraphState:
    token: str = "test-access-token"
    sent: list[dict[str, Any]] = field(default_factory=list)
    failures: list[ScriptedFailure] = field(default_factory=list)
    attempts: int = 0
    released: asyncio.Event | None = None  # set: answering; cleared: holding answers back
    status_webhooks: StatusWebhooks | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next_failure(self, to: str, by_phone: bool) -> ScriptedFailure | None:
        for failure in self.failures:
            if failure.code == NEEDS_PHONE_NUMBER and by_phone:
                continue
            if failure.times > 0 and failure.to in (None, to):
                failure.times -= 1
                return failure
        return None


def build_app(state: FakeGraphState) -> web.Application:
    async def messages(request: web.Request) -> web.Response:
        state.attempts += 1
        if request.headers.get("Authorization") != f"Bearer {state.token}":
            return _error(401, 190, "Invalid OAuth access token")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, 100, "Invalid parameter")
        to = body.get("to") or body.get("recipient")
        if body.get("messaging_product") != "whatsapp" or not to or not body.get("type"):
            return _error(400, 100, "Invalid parameter")
        by_phone = bool(body.get("to"))
        failure = state.next_failure(str(to), by_phone)
        if failure is not None:
            return _error(failure.status, failure.code, ERROR_TITLES.get(failure.code, "Error"))
        wamid = f"wamid.FAKE{next(state._ids):012d}"
        state.sent.append(
            {
                "id": wamid,
                "phone_number_id": request.match_info["phone_number_id"],
                "body": body,
                "received_at": time.time(),
            }
        )
        if state.status_webhooks is not None:
            state.status_webhooks.report(wamid, str(to), body.get("biz_opaque_callback_data"))
        if state.released is not None:
            await state.released.wait()
        # A send response never names both identifiers (notes/whatsapp-bsuid.md, section 6).
        contact = {"input": to, "wa_id": to} if by_phone else {"input": to, "user_id": to}
        return web.json_response(
            {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}
        )

    async def sent(_: web.Request) -> web.Response:
        return web.json_response(state.sent)

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"sent": len(state.sent)})

    async def reset(_: web.Request) -> web.Response:
        state.sent.clear()
        state.failures.clear()
        state.attempts = 0
        return web.json_response({"ok": True})

    async def fail(request: web.Request) -> web.Response:
        spec = await request.json()
        state.failures.append(
            ScriptedFailure(
                code=int(spec["code"]),
                status=int(spec.get("status", 400)),
                times=int(spec.get("times", 1)),
                to=spec.get("to"),
            )
        )
        return web.json_response({"ok": True})

    async def hold(request: web.Request) -> web.Response:
        if state.released is None:
            state.released = asyncio.Event()
            state.released.set()
        if (await request.json()).get("hold"):
            state.released.clear()
        else:
            state.released.set()
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/{version}/{phone_number_id}/messages", messages)
    app.router.add_get("/_fake/sent", sent)
    app.router.add_get("/_fake/count", count)
    app.router.add_delete("/_fake/sent", reset)
    app.router.add_post("/_fake/fail", fail)
    app.router.add_post("/_fake/hold", hold)
    return app


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "FAKE"}},
        status=status,
    )


class FakeGraphServer:
    """Runs the stand-in on loopback in a background thread (for in-process tests)."""

    def __init__(self, port: int = 0, token: str = "test-access-token") -> None:
        self.state = FakeGraphState(token=token)
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v21.0"

    def start(self) -> FakeGraphServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port the OS picked

    def stop(self) -> None:
        if self.state.status_webhooks is not None:
            asyncio.run_coroutine_threadsafe(self.state.status_webhooks.close(), self._loop).result(
                timeout=10
            )
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    # The token to expect comes from the environment, as the bot's does: not on the command line,
    # which every local user can read (`ps`).
    token = from_env().whatsapp_access_token or "test-access-token"
    # uvloop, as the broadcast worker: the benchmark's stand-in shares the machine's cores with it.
    web.run_app(
        build_app(FakeGraphState(token=token)),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
