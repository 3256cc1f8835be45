"""The broadcasts and broadcast_deliveries rows: create, claim at most once, record outcomes.

A delivery moves pending -> sending -> sent | skipped_opted_out | failed, and only forward: every
write after the claim requires `sending`, and only a claim (pending -> sending, one UPDATE) may
lead to a send. A row left in `sending` (the action died between claim and outcome) is never sent
again, because nobody can tell whether WhatsApp got it; the report calls it interrupted.
The one way back is throttling: WhatsApp answered 130429 and did not take the message.

The action names the customer by its conversation (the customer key, or any identifier); a
delivery belongs to the customer's family (bot/store/identities.py), so a customer merged after
the selection is claimed, and sent, once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.engine import Connection

from bot.broadcast.audience import PENDING, Audience, materialise
from bot.consent import marketing_allowed_clause
from bot.schema import broadcast_deliveries, broadcasts, customers
from bot.store.identities import family_ids, resolve
from bot.store.timestamps import from_db, to_db

SENDING = "sending"
SENT = "sent"
SKIPPED_OPTED_OUT = "skipped_opted_out"
FAILED = "failed"
STATES = (PENDING, SENDING, SENT, SKIPPED_OPTED_OUT, FAILED)

# The delivery columns, used everywhere below.
_c = broadcast_deliveries.c


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: str
    template: str
    language: str
    params: tuple[str, ...]
    audience: str
    rate: float
    audience_count: int
    excluded_opted_out: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery the caller now owns: it alone may send it."""

    broadcast_id: str
    template: str
    language: str
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    customer_id: int
    customer_key: str  # the key at selection time: resolve it before triggering (conversation_id)


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str
    error_code: int | None


def create(
    conn: Connection,
    broadcast_id: str,
    template: str,
    language: str,
    params: Sequence[str],
    audience: Audience,
    rate: float,
    audience_count: int,
    at: datetime,
) -> Broadcast:
    """The broadcast row and its pending deliveries, in the caller's transaction: a broadcast never
    exists with half an audience. `audience_count` is the caller's count of the audience."""
    values = {
        "id": broadcast_id,
        "template": template,
        "language": language,
        "params": json.dumps(list(params), ensure_ascii=False),
        "audience": audience.description,
        "rate": rate,
        "audience_count": audience_count,
        "excluded_opted_out": 0,
        "created_at": to_db(at),
    }
    conn.execute(insert(broadcasts).values(values))
    added = materialise(conn, broadcast_id, audience, at)
    # Whoever the one INSERT left out was opted out at that moment, even if somebody opted out
    # (or was added) after the count.
    excluded = max(0, audience_count - added)
    conn.execute(
        update(broadcasts).where(broadcasts.c.id == broadcast_id).values(excluded_opted_out=excluded)
    )
    found = get(conn, broadcast_id)
    assert found is not None
    return found


def get(conn: Connection, broadcast_id: str) -> Broadcast | None:
    row = conn.execute(select(broadcasts).where(broadcasts.c.id == broadcast_id)).first()
    if row is None:
        return None
    return Broadcast(
        id=row.id,
        template=row.template,
        language=row.language,
        params=tuple(json.loads(row.params)),
        audience=row.audience,
        rate=row.rate,
        audience_count=row.audience_count,
        excluded_opted_out=row.excluded_opted_out,
        created_at=from_db(row.created_at),
    )


def _family(conn: Connection, who: str) -> list[int]:
    customer = resolve(conn, who)
    return [] if customer is None else family_ids(conn, customer.id)


def claim(conn: Connection, broadcast_id: str, who: str, at: datetime) -> Claimed | None:
    """pending -> sending in one UPDATE; None if there is no such pending delivery (unknown
    broadcast, not in its audience, or already claimed by an earlier or concurrent run).
    `who`: the customer key (the conversation) or any identifier of theirs."""
    family = _family(conn, who)
    claimed = conn.execute(
        update(broadcast_deliveries)
        .where(and_(_c.broadcast_id == broadcast_id, _c.customer_id.in_(family), _c.state == PENDING))
        .values(state=SENDING, updated_at=to_db(at))
    )
    if claimed.rowcount < 1:
        return None
    row = conn.execute(
        select(broadcasts.c.template, broadcasts.c.language, broadcasts.c.params).where(
            broadcasts.c.id == broadcast_id
        )
    ).one()
    return Claimed(broadcast_id, row.template, row.language, tuple(json.loads(row.params)))


def finish(
    conn: Connection,
    broadcast_id: str,
    who: str,
    state: str,
    at: datetime,
    wamid: str | None = None,
    error_code: int | None = None,
    error_title: str | None = None,
) -> bool:
    """Record the outcome of a claimed delivery (or, with state pending, hand it back unsent)."""
    if state not in (SENT, SKIPPED_OPTED_OUT, FAILED, PENDING):
        raise ValueError(f"not an outcome: {state!r}")
    result = conn.execute(
        update(broadcast_deliveries)
        .where(
            and_(
                _c.broadcast_id == broadcast_id,
                _c.customer_id.in_(_family(conn, who)),
                _c.state == SENDING,
            )
        )
        .values(
            state=state, wamid=wamid, error_code=error_code, error_title=error_title, updated_at=to_db(at)
        )
    )
    return result.rowcount >= 1


def pending_page(
    conn: Connection, broadcast_id: str, after_customer_id: int, limit: int
) -> list[PendingDelivery]:
    """The next pending deliveries in customer order (keyset pagination: no OFFSET scans)."""
    rows = conn.execute(
        select(_c.customer_id, _c.customer_key)
        .where(and_(_c.broadcast_id == broadcast_id, _c.customer_id > after_customer_id, _c.state == PENDING))
        .order_by(_c.customer_id)
        .limit(limit)
    )
    return [PendingDelivery(row.customer_id, row.customer_key) for row in rows]


def outcome(conn: Connection, broadcast_id: str, customer_id: int) -> Outcome:
    row = conn.execute(
        select(_c.state, _c.error_code).where(
            and_(_c.broadcast_id == broadcast_id, _c.customer_id == customer_id)
        )
    ).one()
    return Outcome(row.state, row.error_code)


def pending_counts(conn: Connection, broadcast_id: str) -> tuple[int, int]:
    """(pending deliveries, of them opted out since the selection: they will be skipped)."""
    allowed = marketing_allowed_clause(customers)
    total, sendable = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((allowed, 1), else_=0)), 0))
        .select_from(broadcast_deliveries.join(customers, customers.c.id == _c.customer_id))
        .where(and_(_c.broadcast_id == broadcast_id, _c.state == PENDING))
    ).one()
    return total, total - sendable
