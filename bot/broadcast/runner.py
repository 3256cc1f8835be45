"""The command's send loop: every pending delivery becomes one Rasa trigger_intent call.

`POST /conversations/<customer key>/trigger_intent` runs `action_send_broadcast` in the customer's own
conversation (so the broadcast, and a reply to it, are part of it); the action claims the delivery,
checks consent at that moment and sends. This loop only paces the calls (token bucket), keeps a few
in flight, and reads each delivery's outcome back from the database for the running counts.

It stops early when deliveries keep coming back untouched (Rasa or the action server down, the
model without the broadcast intent): whatever is left stays pending for a run with `--id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import aiohttp

from bot.broadcast import deliveries
from bot.broadcast.audience import PENDING
from bot.broadcast.deliveries import FAILED, SENDING, SENT, SKIPPED_OPTED_OUT, Outcome, PendingDelivery
from bot.broadcast.rate import Pacer
from bot.db import run_sync, transaction
from bot.store.identities import conversation_id
from bot.whatsapp.cloud_api import RETRYABLE_CODES

SEND_INTENT = "EXTERNAL_send_broadcast"
BROADCAST_ENTITY = "broadcast_id"
OUTPUT_CHANNEL = "whatsapp"
PAGE_SIZE = 200
# Deliveries in a row that came back untouched before the run gives up.
MAX_STALLED = 10
# The action may wait out WhatsApp's throttling (several retries with backoff) before it answers.
TRIGGER_TIMEOUT = 120.0


class RasaUnavailable(Exception):
    """The Rasa server cannot be used: not running, wrong token, ..."""


@dataclass(frozen=True)
class RasaApi:
    base_url: str
    token: str

    async def check(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(f"{self.base_url}/status", params={"token": self.token}) as response:
                if response.status == 401:
                    raise RasaUnavailable(
                        f"{self.base_url} refused the token: set RASA_AUTH_TOKEN to the bot's token"
                    )
                if response.status != 200:
                    raise RasaUnavailable(f"{self.base_url}/status answered {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise RasaUnavailable(f"cannot reach Rasa at {self.base_url}: {error}") from error

    async def trigger(
        self, session: aiohttp.ClientSession, conversation: str, broadcast_id: str
    ) -> str | None:
        """Run the send in the customer's conversation; an error text, or None when Rasa said 200."""
        params = {"output_channel": OUTPUT_CHANNEL, "token": self.token, "include_events": "NONE"}
        body = {"name": SEND_INTENT, "entities": {BROADCAST_ENTITY: broadcast_id}}
        url = f"{self.base_url}/conversations/{conversation}/trigger_intent"
        try:
            async with session.post(url, params=params, json=body) as response:
                if response.status == 200:
                    return None
                return f"Rasa answered {response.status}: {(await response.text())[:200]}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return f"Rasa request failed: {type(error).__name__}: {error}"


@dataclass
class Tally:
    """This run's counts, by each delivery's state after its turn."""

    to_attempt: int
    sent: int = 0
    skipped_opted_out: int = 0
    failed: int = 0
    throttled: int = 0  # WhatsApp answered 130429 / 131056 even after retries: pending again
    interrupted: int = 0  # claimed, no outcome: the action failed after claiming
    untouched: int = 0  # still pending: the action never claimed it
    rasa_errors: int = 0
    stopped: str | None = None  # why the run ended early

    @property
    def attempted(self) -> int:
        return (
            self.sent
            + self.skipped_opted_out
            + self.failed
            + self.throttled
            + self.interrupted
            + self.untouched
        )

    def record(self, outcome: Outcome) -> None:
        if outcome.state == SENT:
            self.sent += 1
        elif outcome.state == SKIPPED_OPTED_OUT:
            self.skipped_opted_out += 1
        elif outcome.state == FAILED:
            self.failed += 1
        elif outcome.state == SENDING:
            self.interrupted += 1
        elif is_throttled(outcome):
            self.throttled += 1
        else:
            self.untouched += 1

    def line(self, elapsed: float) -> str:
        speed = self.attempted / elapsed if elapsed > 0 else 0.0
        return (
            f"sent {self.sent}, skipped (opted out) {self.skipped_opted_out}, failed {self.failed}"
            f" | {self.attempted}/{self.to_attempt} in {elapsed:.1f} s ({speed:.1f}/s)"
        )


def is_throttled(outcome: Outcome) -> bool:
    return outcome.state == PENDING and outcome.error_code in RETRYABLE_CODES


async def send_pending(
    broadcast_id: str,
    rasa: Sequence[RasaApi],
    rate: float,
    concurrency: int,
    progress: TextIO,
    progress_interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> Tally:
    """Attempt every delivery that is pending now, once, in customer order.

    With several Rasa servers (replicas sharing their stores), the workers take turns among them.
    """
    pending, _ = await _store(deliveries.pending_counts, broadcast_id)
    tally = Tally(to_attempt=pending)
    pacer = Pacer(rate, clock)
    queue: asyncio.Queue[PendingDelivery | None] = asyncio.Queue(maxsize=concurrency * 2)
    stalled = 0
    started = clock()

    async def produce() -> None:
        after = 0
        while page := await _store(deliveries.pending_page, broadcast_id, after, PAGE_SIZE):
            for delivery in page:
                await queue.put(delivery)
            after = page[-1].customer_id
        for _ in range(concurrency):
            await queue.put(None)

    async def work(session: aiohttp.ClientSession, api: RasaApi) -> None:
        nonlocal stalled
        while tally.stopped is None and (delivery := await queue.get()) is not None:
            await pacer.wait()
            # The key the delivery was selected under may since have been merged into another.
            conversation = await _store(conversation_id, delivery.customer_key) or delivery.customer_key
            error = await api.trigger(session, conversation, broadcast_id)
            tally.rasa_errors += error is not None
            outcome = await _store(deliveries.outcome, broadcast_id, delivery.customer_id)
            tally.record(outcome)
            if is_throttled(outcome):
                pacer.slow_down()
            stalled = stalled + 1 if outcome.state == PENDING and not is_throttled(outcome) else 0
            if stalled >= MAX_STALLED and tally.stopped is None:
                tally.stopped = (
                    f"{stalled} deliveries in a row were not attempted"
                    f" ({error or 'Rasa answered 200 but the action did not claim them'});"
                    " check the Rasa server, the action server and its WHATSAPP_* settings"
                )

    async def show_progress() -> None:
        while True:
            await asyncio.sleep(progress_interval)
            _progress(progress, tally.line(clock() - started))

    timeout = aiohttp.ClientTimeout(total=TRIGGER_TIMEOUT, connect=5.0)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)
    ) as session:
        for api in rasa:
            await api.check(session)
        producer = asyncio.create_task(produce())
        reporter = asyncio.create_task(show_progress())
        try:
            await asyncio.gather(*(work(session, rasa[i % len(rasa)]) for i in range(concurrency)))
        finally:
            producer.cancel()
            reporter.cancel()
    _progress(progress, tally.line(clock() - started), final=True)
    return tally


def _progress(stream: TextIO, line: str, final: bool = False) -> None:
    # On a terminal the line is rewritten in place; in a log, one line per report.
    if stream.isatty():
        stream.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
    else:
        stream.write(line + "\n")
    stream.flush()


async def _store(func: Callable[..., Any], *args: Any) -> Any:
    def in_transaction() -> Any:
        with transaction() as conn:
            return func(conn, *args)

    return await run_sync(in_transaction)
