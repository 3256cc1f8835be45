"""Broadcast workers: the send decision (bot/broadcast/sending.py) in batches, outside Rasa.

A worker process runs a few lanes on one event loop, with one aiohttp session (the Cloud API
client's) for all of them. Each lane, over and over:
1. books its next batch on the number's shared token bucket (bot/broadcast/rate.py) and waits
   out its turn; booking before claiming keeps the time between the consent check and the send
   to the bucket's wait, not the batch's;
2. claims the batch and prepares it in one transaction (consent at this moment, addresses, the
   opt-out link's tokens; claimed -> sending);
3. sends the batch concurrently and records the outcomes in one transaction;
4. on 130429 lowers the shared rate for every worker of the number.
Lanes overlap one batch's database work with another's requests. Workers on other hosts do the
same against the same database (PostgreSQL: FOR UPDATE SKIP LOCKED claims); a worker killed
while claiming leaves nothing behind (the claim rolls back); one killed with requests in flight
leaves them in `sending`, which the next worker settles from the status webhooks once the lease
(longer than any request) has run out, and never resends (bot/broadcast/deliveries.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from bot.broadcast import deliveries, rate
from bot.broadcast.deliveries import Broadcast
from bot.broadcast.sending import Campaign, Ready, last_look, prepare, record, send, throttled
from bot.broadcast.states import DeliveryState
from bot.db import run_sync, transaction
from bot.opt_out_link.settings import LinkSettings
from bot.store.timestamps import now
from bot.whatsapp.cloud_api import CloudApiClient

logger = logging.getLogger(__name__)

MAX_BATCH = 50
# Messages sent together after one last look at consent (sending.last_look): small enough that
# they leave within milliseconds of it, large enough that the look costs little per message.
LAST_LOOK = 10
LANES = 4
LEASE = timedelta(seconds=30)
IDLE_POLL = 0.5  # seconds between looks when the rest is claimed by others or waiting for a retry
MAX_DB_FAILURES = 10  # in a row: the database is down, not busy


def batch_size(send_rate: float) -> int:
    """Pure: a tenth of a second's sends, so a batch never holds the bucket long; whole batches
    when the rate is unlimited."""
    if math.isinf(send_rate):
        return MAX_BATCH
    return max(1, min(MAX_BATCH, int(send_rate / 10)))


def worker_id() -> str:
    """Unique among all workers on all hosts: the lease names it."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{os.urandom(3).hex()}"


@dataclass
class WorkerSettings:
    phone_number_id: str
    name: str = field(default_factory=worker_id)
    lanes: int = LANES
    lease: timedelta = LEASE
    idle_poll: float = IDLE_POLL


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    throttled: int = 0
    pair_limited: int = 0


async def run_broadcast(
    broadcast: Broadcast,
    client: CloudApiClient,
    settings: WorkerSettings,
    link: LinkSettings | None,
    send_rate: float,
) -> Tally:
    """Send this broadcast's deliveries until none is left to claim (pending or claimed, by
    anyone); `send_rate` is the broadcast's rate (math.inf: unlimited)."""
    campaign = Campaign.of(broadcast, link)
    tally = Tally()
    await _reconcile(broadcast.id, settings)
    lanes = [
        _lane(campaign, client, settings, f"{settings.name}/{lane}", send_rate, tally)
        for lane in range(settings.lanes)
    ]
    await asyncio.gather(*lanes)
    await _reconcile(broadcast.id, settings)
    return tally


async def _reconcile(broadcast_id: str, settings: WorkerSettings) -> None:
    settled = await _store(deliveries.reconcile, broadcast_id, settings.lease, now())
    if settled:
        logger.warning(
            "broadcast %s: %d send(s) of a dead worker confirmed by WhatsApp's statuses",
            broadcast_id,
            settled,
        )


async def serve(
    client: CloudApiClient,
    settings: WorkerSettings,
    link: LinkSettings | None,
    only: str | None = None,
    until_done: bool = False,
    poll: float = 2.0,
) -> Tally:
    """Work on every broadcast with deliveries to claim (or only `only`), oldest first, each at its
    own stored rate; wait for more when there is none, or return when `until_done`."""
    total = Tally()
    while True:
        ids = await _store(deliveries.active_broadcasts)
        if only is not None:
            ids = [i for i in ids if i == only]
        for broadcast_id in ids:
            broadcast = await _store(deliveries.get, broadcast_id)
            if broadcast is None:
                continue
            logger.info("worker %s: broadcast %s at %s/s", settings.name, broadcast_id, broadcast.rate)
            tally = await run_broadcast(broadcast, client, settings, link, broadcast.rate)
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(tally, name))
        if until_done and not ids:
            return total
        if not ids:
            await asyncio.sleep(poll)


async def _lane(
    campaign: Campaign,
    client: CloudApiClient,
    settings: WorkerSettings,
    name: str,
    send_rate: float,
    tally: Tally,
) -> None:
    size = batch_size(send_rate)
    failures = 0
    while True:
        try:
            more, size = await _batch(campaign, client, settings, name, send_rate, size, tally)
            failures = 0
        except SQLAlchemyError:
            # SQLite busy past its timeout on a loaded machine, a PostgreSQL failover: the failed
            # transaction rolled back (an unsent claim is pending again; a batch whose outcomes
            # were lost stays in `sending`, never resent). Try again, unless it keeps failing.
            failures += 1
            if failures >= MAX_DB_FAILURES:
                raise
            logger.exception("broadcast %s: database error, retrying (%d)", campaign.broadcast.id, failures)
            await asyncio.sleep(settings.idle_poll * failures)
            continue
        if not more:
            return


async def _batch(
    campaign: Campaign,
    client: CloudApiClient,
    settings: WorkerSettings,
    name: str,
    send_rate: float,
    size: int,
    tally: Tally,
) -> tuple[bool, int]:
    """One batch: whether there may be more, and the batch size from now on."""
    broadcast_id = campaign.broadcast.id
    wait = await _store(rate.reserve, settings.phone_number_id, send_rate, size, time.time())
    if wait > 0:
        await asyncio.sleep(wait)
    ready = await _store(_claim_and_prepare, campaign, name, size, tally)
    if ready is None:
        left = await _store(_work_left, broadcast_id)
        if left is None:
            return False, size
        await asyncio.sleep(min(settings.idle_poll, max(0.0, left)))
        return True, size
    if ready:
        results: list[tuple[Ready, deliveries.Finished]] = []
        for start in range(0, len(ready), LAST_LOOK):
            go, stopped = await _store(last_look, ready[start : start + LAST_LOOK])
            results += stopped
            finished = await asyncio.gather(*(send(client, item) for item in go))
            results += zip(go, finished, strict=True)
        await _store(record, broadcast_id, results, now())
        _count(tally, [f for _, f in results])
        if any(throttled(f) for _, f in results):
            lowered = await _store(rate.lower, settings.phone_number_id, send_rate, time.time())
            logger.warning(
                "broadcast %s: WhatsApp throttled the number; rate now %.1f/s", broadcast_id, lowered
            )
            size = batch_size(lowered)
    return True, size


def _claim_and_prepare(
    conn: Any, campaign: Campaign, name: str, size: int, tally: Tally
) -> list[Ready] | None:
    """None: nothing was claimable; otherwise what is ready to send (maybe nothing: all skipped)."""
    at = now()
    claimed = deliveries.claim_batch(conn, campaign.broadcast.id, name, size, at)
    if not claimed:
        return None
    ready = prepare(conn, campaign, claimed, at)
    tally.skipped += len(claimed) - len(ready)
    return ready


def _work_left(conn: Connection, broadcast_id: str) -> float | None:
    """None when nothing is pending; else seconds until something may be claimable (a pair-limit
    retry, or rows another worker is claiming right now)."""
    if deliveries.state_counts(conn, broadcast_id)[DeliveryState.PENDING] == 0:
        return None
    retry = deliveries.next_retry(conn, broadcast_id)
    if retry is not None and retry > now():
        return (retry - now()).total_seconds()
    return IDLE_POLL


def _count(tally: Tally, finished: list[deliveries.Finished]) -> None:
    for item in finished:
        if item.state == DeliveryState.SENT:
            tally.sent += 1
        elif item.state == DeliveryState.SKIPPED_OPTED_OUT:
            tally.skipped += 1
        elif item.state == DeliveryState.FAILED:
            tally.failed += 1
        elif throttled(item):
            tally.throttled += 1
        else:
            tally.pair_limited += 1


async def _store(func: Callable[..., Any], *args: Any) -> Any:
    def in_transaction() -> Any:
        with transaction() as conn:
            return func(conn, *args)

    return await run_sync(in_transaction)
