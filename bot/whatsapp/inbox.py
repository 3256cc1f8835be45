"""The webhook inbox: atomic dedupe of inbound messages and forward-only delivery statuses.

Dedupe is a claim with a lease, not a "seen" flag, so that a failure can never swallow a retry:
- the first copy of a wamid inserts a `processing` row (the primary key makes this atomic across
  threads, processes and replicas) and is processed;
- when processing succeeds the row becomes `done`, and later copies are acknowledged with 200;
- when it fails the row is deleted, the webhook answers non-200, and WhatsApp's retry is processed;
- a copy that arrives while another is still being processed is told to come back later (non-200),
  and a `processing` row older than the lease (its process died mid-turn) may be taken over.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Connection

from bot.db import insert_or_ignore, transaction
from bot.schema import inbound_messages, message_statuses
from bot.store import timestamps
from bot.store.identities import Customer
from bot.whatsapp.inbound import DeliveryStatus, StatusUpdate

DEFAULT_LEASE = timedelta(seconds=120)


class Claim(enum.Enum):
    NEW = "new"  # ours to process
    DONE = "done"  # already processed: acknowledge
    BUSY = "busy"  # another copy is being processed right now: ask WhatsApp to retry later


def claim(
    wamid: str,
    sender: Callable[[Connection], Customer],
    lease: timedelta = DEFAULT_LEASE,
    when_new: Callable[[Connection, Customer], None] | None = None,
) -> tuple[Claim, Customer]:
    """Claim a message for processing. `sender` finds whose it is (identity linking, idempotent)
    and `when_new` runs when it is ours, both in the claim's transaction.

    Sharing the transaction saves a round trip per message, and if anything fails the claim is
    rolled back with it, so the retry is processed as if nothing had happened.
    """
    while True:
        with transaction() as conn:
            customer = sender(conn)
            outcome = _claim(conn, wamid, customer.key, lease)
            if outcome is Claim.NEW and when_new is not None:
                when_new(conn, customer)
        if outcome is not None:
            return outcome, customer


def _claim(conn: Connection, wamid: str, customer_key: str, lease: timedelta) -> Claim | None:
    now = timestamps.now()
    new = {"wamid": wamid, "customer_key": customer_key, "state": "processing", "attempts": 1}
    if insert_or_ignore(conn, inbound_messages, {**new, "claimed_at": now}):
        return Claim.NEW
    held = conn.execute(
        select(inbound_messages.c.state, inbound_messages.c.claimed_at).where(
            inbound_messages.c.wamid == wamid
        )
    ).first()
    if held is None:  # released between our insert and this read: try again
        return None
    if held.state == "done":
        return Claim.DONE
    if timestamps.from_db(held.claimed_at) > now - lease:
        return Claim.BUSY
    # The holder outlived its lease (its process died mid-turn): take the claim over, unless
    # another copy beat us to it.
    taken = conn.execute(
        update(inbound_messages)
        .where(
            and_(
                inbound_messages.c.wamid == wamid,
                inbound_messages.c.state == "processing",
                inbound_messages.c.claimed_at == held.claimed_at,
            )
        )
        .values(claimed_at=now, attempts=inbound_messages.c.attempts + 1)
    )
    return Claim.NEW if taken.rowcount == 1 else Claim.BUSY


def finish(wamid: str) -> None:
    with transaction() as conn:
        conn.execute(
            update(inbound_messages)
            .where(inbound_messages.c.wamid == wamid)
            .values(state="done", finished_at=timestamps.now())
        )


def release(wamid: str) -> None:
    """Processing failed: forget the claim so that WhatsApp's retry is processed."""
    with transaction() as conn:
        conn.execute(
            delete(inbound_messages).where(
                and_(inbound_messages.c.wamid == wamid, inbound_messages.c.state == "processing")
            )
        )


def record_status(conn: Connection, update_: StatusUpdate) -> bool:
    """Store a delivery status unless it would move the message's status backwards, in the
    caller's transaction (a webhook's statuses share one).

    Returns True when the stored status changed. Statuses arrive out of order (a `sent` after its
    `delivered`) and more than once; both are no-ops here.
    """
    if update_.status is DeliveryStatus.UNKNOWN:
        return False
    values = _status_values(update_)
    row = {"wamid": update_.message_id, "callback_data": update_.callback_data, **values}
    if insert_or_ignore(conn, message_statuses, row):
        return True
    # The message already has a status: the rank check decides.
    return _advance(conn, update_.message_id, values)


def _status_values(update_: StatusUpdate) -> dict:
    return {
        "recipient_id": update_.recipient_id,
        "status": update_.status.name.lower(),
        "rank": int(update_.status),
        "error_code": update_.error_code,
        "error_title": update_.errors[0].title if update_.errors else None,
        "status_at": timestamps.from_unix(update_.timestamp),
        "updated_at": timestamps.now(),
    }


def _advance(conn: Connection, wamid: str, values: dict) -> bool:
    result = conn.execute(
        update(message_statuses)
        .where(and_(message_statuses.c.wamid == wamid, message_statuses.c.rank < values["rank"]))
        .values(**values)
    )
    return result.rowcount == 1


def status_of(wamid: str) -> dict | None:
    with transaction() as conn:
        row = conn.execute(select(message_statuses).where(message_statuses.c.wamid == wamid)).first()
        return dict(row._mapping) if row else None
