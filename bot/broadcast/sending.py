"""One broadcast message per customer: the decision every send path shares.

Both the workers (bot/broadcast/worker.py, whole batches) and `action_send_broadcast` (one
customer, in their Rasa conversation) do exactly this, through these functions:
1. claim the delivery (bot/broadcast/deliveries.py);
2. `prepare`, in the claim's transaction: ask `bot.consent` at this moment (an OPT_OUT tag, or an
   opt-out request not answered yet: skipped_opted_out), find the address (none: failed), issue
   the opt-out link's token and build the template message; the rest move to `sending`;
3. `send` it with the Cloud API client, and turn the answer into an outcome (`outcome_of`, pure);
4. `record` the outcomes; a 131050 refusal is the customer's opt-out in WhatsApp itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot import consent
from bot.broadcast import deliveries
from bot.broadcast.deliveries import Broadcast, Delivery, Finished
from bot.broadcast.states import DeliveryState
from bot.broadcast.template import TemplateButtons, load_buttons, template_message
from bot.opt_out_link.settings import LinkSettings
from bot.schema import customers
from bot.store.identities import Address, addresses_of, live_ids
from bot.store.tags import record_opt_out
from bot.store.timestamps import now
from bot.whatsapp.cloud_api import (
    MARKETING_OPTED_OUT,
    THROUGHPUT_LIMIT,
    TOO_MANY_TO_SAME_USER,
    CloudApiClient,
    SendError,
    SendRejected,
    Sent,
)
from bot.whatsapp.outbound import addressed

logger = logging.getLogger(__name__)

# WhatsApp's pair limit (131056) is about one message every few seconds to the same customer:
# wait 6 s, then twice as long each time, and give up after 5 tries.
PAIR_LIMIT_FIRST_WAIT = 6.0
PAIR_LIMIT_ATTEMPTS = 5
NO_ADDRESS = "no WhatsApp address"


@dataclass(frozen=True)
class Campaign:
    """What every message of a broadcast shares."""

    broadcast: Broadcast
    buttons: TemplateButtons
    link: LinkSettings | None  # only read when the template has the opt-out link

    @classmethod
    def of(cls, broadcast: Broadcast, link: LinkSettings | None) -> Campaign:
        return cls(broadcast, load_buttons(broadcast.template), link)


@dataclass(frozen=True, slots=True)
class Ready:
    """A delivery in `sending`: its message is built, nothing has left yet."""

    customer_id: int  # the delivery's customer (as selected)
    customer_key: str  # the live customer's key (for a 131050 opt-out)
    attempts: int
    body: dict[str, Any]


def message(campaign: Campaign, customer_id: int, address: Address, sent_at: int) -> dict[str, Any]:
    """The template message for one customer; the opt-out link's token names them and the broadcast."""
    broadcast = campaign.broadcast
    token = None
    if campaign.buttons.opt_out_link is not None:
        if campaign.link is None:
            raise ValueError(f"template {broadcast.template!r} has an opt-out link: link settings needed")
        token = campaign.link.token(customer_id, broadcast.id, sent_at)
    body = template_message(
        "", broadcast.template, broadcast.language, broadcast.params, broadcast.id, campaign.buttons, token
    )
    return addressed(body, address)


def prepare(conn: Connection, campaign: Campaign, claimed: Sequence[Delivery], at: datetime) -> list[Ready]:
    """Consent at this moment, addresses and messages for claimed deliveries; writes the skipped
    and address-less outcomes and moves the others to `sending`, in the caller's transaction."""
    broadcast_id = campaign.broadcast.id
    live, allowed = _live_and_allowed(conn, (d.customer_id for d in claimed))
    addresses = addresses_of(conn, allowed)
    keys = _keys(conn, allowed)
    sent_at = int(time.time())
    ready: list[Ready] = []
    done: list[Finished] = []
    for delivery in claimed:
        customer = live[delivery.customer_id]
        if customer not in allowed:
            done.append(
                Finished(delivery.customer_id, DeliveryState.SKIPPED_OPTED_OUT, attempts=delivery.attempts)
            )
        elif customer not in addresses:
            done.append(
                Finished(
                    delivery.customer_id,
                    DeliveryState.FAILED,
                    error_title=NO_ADDRESS,
                    attempts=delivery.attempts,
                )
            )
        else:
            body = message(campaign, customer, addresses[customer], sent_at)
            ready.append(Ready(delivery.customer_id, keys[customer], delivery.attempts, body))
    deliveries.finish_many(conn, broadcast_id, done, at)
    deliveries.start_sending(conn, broadcast_id, [r.customer_id for r in ready], at)
    skipped = sum(1 for d in done if d.state == DeliveryState.SKIPPED_OPTED_OUT)
    if skipped:
        logger.info("broadcast %s: %d customer(s) opted out since the selection", broadcast_id, skipped)
    return ready


def last_look(conn: Connection, ready: Sequence[Ready]) -> tuple[list[Ready], list[tuple[Ready, Finished]]]:
    """Consent once more just before a few prepared messages leave: (those that may go, the
    outcomes of those that may not). `prepare` decided in its transaction, but a batch takes tens
    of milliseconds to go out at full speed; a customer who opts out meanwhile must not get the
    rest of it (`make bench-send` found 6 of 200 such customers reached at ~2,000 messages/s)."""
    live, allowed = _live_and_allowed(conn, (r.customer_id for r in ready))
    go: list[Ready] = []
    stopped: list[tuple[Ready, Finished]] = []
    for r in ready:
        # A customer no longer found (`live.get` is None) is not sent to either: when in doubt, not.
        if live.get(r.customer_id) in allowed:
            go.append(r)
        else:
            stopped.append((r, Finished(r.customer_id, DeliveryState.SKIPPED_OPTED_OUT, attempts=r.attempts)))
    return go, stopped


def _live_and_allowed(conn: Connection, customer_ids: Iterable[int]) -> tuple[dict[int, int], set[int]]:
    """Each delivery's live customer (itself, or the one it was merged into), and the live
    customers marketing may reach at this moment (bot.consent): the one decision `prepare` and
    `last_look` both make."""
    live = live_ids(conn, customer_ids)
    return live, consent.customers_allowed_marketing(conn, set(live.values()))


def outcome_of(ready: Ready, answer: Sent | SendError, at: datetime) -> Finished:
    """Pure: what the Cloud API's answer makes of the delivery.

    Accepted: sent. Throttled (130429 or HTTP 429): WhatsApp did not take it, so it goes back to
    pending. The pair limit (131056): pending again after a wait of its own, failed after
    PAIR_LIMIT_ATTEMPTS. Anything else fails: a refusal retrying cannot fix, or no answer at all
    (a timeout, a 5xx), after which it may have gone out and must never go twice.
    """
    if isinstance(answer, Sent):
        return Finished(
            ready.customer_id, DeliveryState.SENT, wamid=answer.message_id, attempts=ready.attempts
        )
    failed = Finished(
        ready.customer_id, DeliveryState.FAILED, None, answer.code, answer.title, ready.attempts
    )
    if isinstance(answer, SendRejected):
        return failed
    if answer.code == TOO_MANY_TO_SAME_USER:
        attempts = ready.attempts + 1
        if attempts >= PAIR_LIMIT_ATTEMPTS:
            return Finished(
                ready.customer_id, DeliveryState.FAILED, None, answer.code, answer.title, attempts
            )
        wait = timedelta(seconds=PAIR_LIMIT_FIRST_WAIT * 2 ** (attempts - 1))
        return Finished(
            ready.customer_id, DeliveryState.PENDING, None, answer.code, answer.title, attempts, at + wait
        )
    if answer.code == THROUGHPUT_LIMIT or answer.http_status == 429:
        return Finished(
            ready.customer_id, DeliveryState.PENDING, None, answer.code, answer.title, ready.attempts
        )
    return failed


def throttled(finished: Finished) -> bool:
    """WhatsApp's throughput limit for the number (not the pair limit of one customer)."""
    return finished.state == DeliveryState.PENDING and finished.error_code != TOO_MANY_TO_SAME_USER


async def send(client: CloudApiClient, ready: Ready) -> Finished:
    try:
        answer: Sent | SendError = await client.send(ready.body)
    except SendError as error:
        answer = error
    return outcome_of(ready, answer, now())


def record(
    conn: Connection, broadcast_id: str, results: Sequence[tuple[Ready, Finished]], at: datetime
) -> None:
    """Write the outcomes; a 131050 refusal also records the customer's opt-out."""
    for ready, finished in results:
        if finished.error_code == MARKETING_OPTED_OUT:
            record_opt_out(
                conn,
                ready.customer_key,
                source="meta_131050",
                message_id=None,
                at=at,
                detail=f"WhatsApp refused broadcast {broadcast_id}: the customer stopped marketing messages",
            )
    deliveries.finish_many(conn, broadcast_id, [finished for _, finished in results], at)


def _keys(conn: Connection, customer_ids: set[int]) -> dict[int, str]:
    rows = conn.execute(select(customers.c.id, customers.c.key).where(customers.c.id.in_(list(customer_ids))))
    return {row.id: row.key for row in rows}
