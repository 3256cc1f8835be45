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
import functools
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Insert

from bot.db import dialect_insert, insert_or_ignore, transaction
from bot.schema import inbound_messages, message_statuses
from bot.store import timestamps
from bot.store.identities import Customer
from bot.whatsapp.inbound import DeliveryStatus, StatusUpdate

DEFAULT_LEASE = timedelta(seconds=120)
T = TypeVar("T")


class Claim(enum.Enum):
    NEW = "new"  # ours to process
    DONE = "done"  # already processed: acknowledge
    BUSY = "busy"  # another copy is being processed right now: ask WhatsApp to retry later


def claim(
    wamid: str,
    sender: Callable[[Connection], Customer],
    lease: timedelta = DEFAULT_LEASE,
    when_new: Callable[[Connection, Customer], T] | None = None,
) -> tuple[Claim, Customer, T | None]:
    """Claim a message for processing. `sender` finds whose it is (identity linking, idempotent)
    and `when_new` runs when it is ours, both in the claim's transaction; what `when_new` returns
    comes back third (None when it did not run).

    Sharing the transaction saves a round trip per message, and if anything fails the claim is
    rolled back with it, so the retry is processed as if nothing had happened.
    """
    while True:
        found = None
        with transaction(durable=False) as conn:
            customer = sender(conn)
            outcome = _claim(conn, wamid, customer.key, lease)
            if outcome is Claim.NEW and when_new is not None:
                found = when_new(conn, customer)
        if outcome is not None:
            return outcome, customer, found


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


# Every inbound message runs it: built once (see bot/store/identities.py on statements built once).
_FINISH = (
    update(inbound_messages)
    .where(inbound_messages.c.wamid == bindparam("finished_wamid"))
    .values(state="done", finished_at=bindparam("finished_at_"))
)


def finish(wamid: str) -> None:
    with transaction(durable=False) as conn:
        conn.execute(_FINISH, {"finished_wamid": wamid, "finished_at_": timestamps.now()})


def release(wamid: str) -> None:
    """Processing failed: forget the claim so that WhatsApp's retry is processed."""
    with transaction(durable=False) as conn:
        conn.execute(
            delete(inbound_messages).where(
                and_(inbound_messages.c.wamid == wamid, inbound_messages.c.state == "processing")
            )
        )


def record_statuses(conn: Connection, updates: Sequence[StatusUpdate]) -> None:
    """Store delivery statuses in the caller's transaction (a webhook's, or a batch of webhooks'),
    each unless it would move its message's status backwards.

    Statuses arrive out of order (a `sent` after its `delivered`) and more than once; both are
    no-ops. One statement for the lot (an upsert whose update only moves forward), executed once
    per message: at 3 statuses per broadcast message, the Python cost per statement was what the
    status path spent the event loop's process on (docs/benchmarks.md)."""
    rows = forward_most(updates)
    if rows:
        conn.execute(_forward_upsert(conn.dialect.name), rows)


def forward_most(updates: Sequence[StatusUpdate]) -> list[dict[str, Any]]:
    """Pure: one row per message, in first-seen order: the values of its highest-ranked status
    (the first of equal ones, as one at a time would keep), and the callback data of its first
    status (stored only when the message's row is created). PostgreSQL refuses an upsert that
    touches one row twice, and the end state is the same as applying them one by one."""
    rows: dict[str, dict[str, Any]] = {}
    for update_ in updates:
        if update_.status is DeliveryStatus.UNKNOWN:
            continue
        values = _status_values(update_)
        kept = rows.get(update_.message_id)
        if kept is None:
            rows[update_.message_id] = {
                "wamid": update_.message_id,
                "callback_data": update_.callback_data,
                **values,
            }
        elif values["rank"] > kept["rank"]:
            kept.update(values)
    return list(rows.values())


def _status_values(update_: StatusUpdate) -> dict[str, Any]:
    return {
        "recipient_id": update_.recipient_id,
        "status": update_.status.name.lower(),
        "rank": int(update_.status),
        "error_code": update_.error_code,
        "error_title": update_.errors[0].title if update_.errors else None,
        "status_at": timestamps.from_unix(update_.timestamp),
        "updated_at": timestamps.now(),
    }


_FORWARD = ("recipient_id", "status", "rank", "error_code", "error_title", "status_at", "updated_at")


@functools.cache
def _forward_upsert(dialect: str) -> Insert:
    """Built once per dialect, like the statements of bot/store/identities.py."""
    insert = dialect_insert(dialect, message_statuses)
    return insert.on_conflict_do_update(
        index_elements=[message_statuses.c.wamid],
        set_={column: insert.excluded[column] for column in _FORWARD},
        where=message_statuses.c.rank < insert.excluded.rank,
    )


def status_of(wamid: str) -> dict | None:
    with transaction() as conn:
        row = conn.execute(select(message_statuses).where(message_statuses.c.wamid == wamid)).first()
        return dict(row._mapping) if row else None
