"""The broadcasts and broadcast_deliveries rows: create, claim at most once, record outcomes.

A delivery moves pending -> claimed -> sending -> sent | skipped_opted_out | failed, and only
forward (the table and its checks: bot/broadcast/states.py; every UPDATE below asks it):
- `claimed`: a worker's batch claim (`claim_batch`), named by worker (`claimed_by`, `claimed_at`).
  It only lives inside the claiming transaction: the consent check moves each claimed row on to
  `sending` or an outcome before the commit, so a worker killed while claiming leaves nothing
  behind (its transaction rolls back and the rows are pending for the next worker at once). On
  PostgreSQL concurrent workers claim with FOR UPDATE SKIP LOCKED, so they never wait for each
  other's rows; on SQLite one writer at a time claims.
- `sending`: the request may have left. A row left here by a dead worker (`claimed_at` older than
  the lease, longer than any request may take) is never sent again blindly: nobody can tell
  whether WhatsApp got it, and a second copy is worse than a missing one. `reconcile` takes such
  rows over from the status webhooks (WhatsApp reports every message it accepted, with the
  broadcast id as biz_opaque_callback_data); the rest stay visible as interrupted in the report.
The one way back to pending is throttling: WhatsApp answered 130429 (or the pair limit 131056,
with a `retry_at`) and did not take the message.

The action (one customer, through Rasa) claims straight into `sending` (`claim`): it sends at once.
It names the customer by its conversation (the customer key, or any identifier); a delivery
belongs to the customer's family (bot/store/identities.py), so a customer merged after the
selection is claimed, and sent, once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from bot.broadcast import states
from bot.broadcast.audience import Audience, materialise
from bot.broadcast.states import DeliveryState
from bot.consent import marketing_allowed_clause
from bot.schema import broadcast_deliveries, broadcasts, customers, message_statuses
from bot.store.identities import family_ids, live_ids, resolve
from bot.store.timestamps import from_db, to_db

# The delivery columns, used everywhere below.
_c = broadcast_deliveries.c


def _moving(new: DeliveryState, *current: DeliveryState) -> ColumnElement[bool]:
    """The WHERE of an UPDATE that moves deliveries from `current` to `new`, once the transition
    table allows each move (states.check raises otherwise). Plain values go to the driver."""
    for state in current:
        states.check(state, new)
    return _in(*current)


def _in(*current: DeliveryState) -> ColumnElement[bool]:
    # The values, not the enum members: drivers bind str subclasses unevenly.
    return _c.state.in_([state.value for state in current])


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
class Delivery:
    """A claimed delivery, as the sender needs it."""

    customer_id: int  # the customer at selection time (possibly merged since: see `live` ids)
    attempts: int  # pair-limit (131056) retries so far


@dataclass(frozen=True, slots=True)
class Received:
    """A broadcast message a customer was sent."""

    broadcast_id: str
    template: str
    wamid: str
    sent_at: datetime
    status: str | None  # the latest status webhook: sent, delivered, read, failed


@dataclass(frozen=True, slots=True)
class Finished:
    """The outcome of one delivery, to record. `state` PENDING hands it back unsent (throttled),
    to be claimed again from `retry_at` on."""

    customer_id: int
    state: DeliveryState
    wamid: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    attempts: int = 0
    retry_at: datetime | None = None


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
    if found is None:  # inserted above in this very transaction
        raise RuntimeError(f"broadcast {broadcast_id} vanished while it was being created")
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
    """pending -> sending in one UPDATE, for the action that sends at once; None if there is no
    such pending delivery (unknown broadcast, not in its audience, or already claimed by an earlier
    or concurrent run). `who`: the customer key (the conversation) or any identifier of theirs."""
    family = _family(conn, who)
    claimed = conn.execute(
        update(broadcast_deliveries)
        .where(
            and_(
                _c.broadcast_id == broadcast_id,
                _c.customer_id.in_(family),
                _moving(DeliveryState.SENDING, DeliveryState.PENDING),
            )
        )
        .values(
            state=DeliveryState.SENDING.value, claimed_by="action", claimed_at=to_db(at), updated_at=to_db(at)
        )
    )
    if claimed.rowcount < 1:
        return None
    row = conn.execute(
        select(broadcasts.c.template, broadcasts.c.language, broadcasts.c.params).where(
            broadcasts.c.id == broadcast_id
        )
    ).one()
    return Claimed(broadcast_id, row.template, row.language, tuple(json.loads(row.params)))


def sending_of(conn: Connection, broadcast_id: str, who: str) -> list[Delivery]:
    """The delivery `claim` just moved to sending for this customer (none or one)."""
    rows = conn.execute(
        select(_c.customer_id, _c.attempts).where(
            _c.broadcast_id == broadcast_id,
            _c.customer_id.in_(_family(conn, who)),
            _in(DeliveryState.SENDING),
        )
    )
    return [Delivery(row.customer_id, row.attempts) for row in rows]


def finish(
    conn: Connection,
    broadcast_id: str,
    who: str,
    state: DeliveryState | str,
    at: datetime,
    wamid: str | None = None,
    error_code: int | None = None,
    error_title: str | None = None,
) -> bool:
    """Record the outcome of a claimed delivery (or, with state pending, hand it back unsent)."""
    outcome = states.outcome(state)
    result = conn.execute(
        update(broadcast_deliveries)
        .where(
            and_(
                _c.broadcast_id == broadcast_id,
                _c.customer_id.in_(_family(conn, who)),
                _moving(outcome, *states.sources(outcome)),
            )
        )
        .values(
            state=outcome.value,
            wamid=wamid,
            error_code=error_code,
            error_title=error_title,
            updated_at=to_db(at),
        )
    )
    return result.rowcount >= 1


def claim_batch(conn: Connection, broadcast_id: str, worker: str, limit: int, at: datetime) -> list[Delivery]:
    """Up to `limit` pending deliveries that are not waiting for a pair-limit retry, for `worker`
    (pending -> claimed), in the caller's transaction: `prepare` moves them on to sending or an
    outcome before it commits, so a worker that dies holding claims only rolls them back.
    `worker` must be unique to the caller: it finds its claim by it."""
    ready = or_(_c.retry_at.is_(None), _c.retry_at <= to_db(at))
    _take(conn, broadcast_id, worker, limit, at, _moving(DeliveryState.CLAIMED, DeliveryState.PENDING), ready)
    rows = conn.execute(
        select(_c.customer_id, _c.attempts)
        .where(_c.broadcast_id == broadcast_id, _in(DeliveryState.CLAIMED), _c.claimed_by == worker)
        .order_by(_c.customer_id)
    )
    return [Delivery(row.customer_id, row.attempts) for row in rows]


def reconcile(conn: Connection, broadcast_id: str, lease: timedelta, at: datetime) -> int:
    """Settle deliveries left in `sending` by a worker that died (claimed longer than `lease` ago:
    longer than any request may take) from the status webhooks: WhatsApp reports every message it
    accepted, with the broadcast id as biz_opaque_callback_data. Those it reported are sent; the
    rest stay in `sending`, never resent (the report lists them as interrupted). Returns how many
    were settled."""
    abandoned = [
        row.customer_id
        for row in conn.execute(
            select(_c.customer_id).where(
                _c.broadcast_id == broadcast_id, _in(DeliveryState.SENDING), _c.claimed_at < to_db(at - lease)
            )
        )
    ]
    if not abandoned:
        return 0
    by_live = {live: mine for mine, live in live_ids(conn, abandoned).items()}
    known = select(_c.wamid).where(_c.broadcast_id == broadcast_id, _c.wamid.is_not(None))
    statuses = conn.execute(
        select(message_statuses.c.wamid, message_statuses.c.recipient_id).where(
            message_statuses.c.callback_data == broadcast_id,
            message_statuses.c.recipient_id.is_not(None),
            message_statuses.c.wamid.not_in(known),
        )
    )
    settled = []
    for status in statuses:
        customer = resolve(conn, status.recipient_id)
        if customer is not None and customer.id in by_live:
            settled.append(Finished(by_live.pop(customer.id), DeliveryState.SENT, wamid=status.wamid))
    finish_many(conn, broadcast_id, settled, at)
    return len(settled)


def _take(
    conn: Connection, broadcast_id: str, worker: str, limit: int, at: datetime, *where: ColumnElement
) -> int:
    candidates = (
        select(_c.customer_id)
        .where(_c.broadcast_id == broadcast_id, *where)
        .order_by(_c.customer_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # SKIP LOCKED: a row another worker is claiming right now is left to it, not waited for.
        # The ids are read first and updated second: as a subquery of the UPDATE, PostgreSQL may
        # run the LIMIT ... SKIP LOCKED select more than once and claim far more than `limit`.
        ids = conn.execute(candidates.with_for_update(skip_locked=True)).scalars().all()
        if not ids:
            return 0
        chosen: Any = ids
    else:
        # SQLite has one writer at a time: one UPDATE with its subquery claims atomically (a
        # separate SELECT would run before the write lock and race the other workers).
        chosen = candidates.scalar_subquery()
    return conn.execute(
        update(broadcast_deliveries)
        .where(_c.broadcast_id == broadcast_id, _c.customer_id.in_(chosen), *where)
        .values(
            state=DeliveryState.CLAIMED.value, claimed_by=worker, claimed_at=to_db(at), updated_at=to_db(at)
        )
        .execution_options(synchronize_session=False)
    ).rowcount


def start_sending(conn: Connection, broadcast_id: str, customer_ids: Sequence[int], at: datetime) -> None:
    """claimed -> sending, just before the requests leave: from here on, never claimed again."""
    if customer_ids:
        conn.execute(
            update(broadcast_deliveries)
            .where(
                _c.broadcast_id == broadcast_id,
                _c.customer_id.in_(customer_ids),
                _moving(DeliveryState.SENDING, DeliveryState.CLAIMED),
            )
            .values(state=DeliveryState.SENDING.value, updated_at=to_db(at))
        )


def finish_many(conn: Connection, broadcast_id: str, finished: Sequence[Finished], at: datetime) -> None:
    """Record the outcomes of claimed (or sending) deliveries: one statement per outcome."""
    by_outcome: dict[DeliveryState, list[Finished]] = {}
    for item in finished:
        by_outcome.setdefault(states.outcome(item.state), []).append(item)
    for outcome, items in by_outcome.items():
        current = sorted(states.sources(outcome))
        conn.execute(
            update(broadcast_deliveries)
            .where(
                _c.broadcast_id == broadcast_id,
                _c.customer_id == bindparam("cid"),
                # Not IN: an expanding IN list cannot go into an executemany.
                or_(*(_c.state == state.value for state in current)),
            )
            .values(
                state=outcome.value,
                wamid=bindparam("new_wamid"),
                error_code=bindparam("new_code"),
                error_title=bindparam("new_title"),
                attempts=bindparam("new_attempts"),
                retry_at=bindparam("new_retry_at"),
                updated_at=to_db(at),
            ),
            [
                {
                    "cid": item.customer_id,
                    "new_wamid": item.wamid,
                    "new_code": item.error_code,
                    "new_title": item.error_title,
                    "new_attempts": item.attempts,
                    "new_retry_at": None if item.retry_at is None else to_db(item.retry_at),
                }
                for item in items
            ],
        )


def broadcast_of_message(conn: Connection, wamid: str) -> str | None:
    """The broadcast whose template message this was (a reply quotes it as `context.id`)."""
    return conn.execute(select(_c.broadcast_id).where(_c.wamid == wamid).limit(1)).scalar_one_or_none()


def received_by(conn: Connection, customer_id: int) -> list[Received]:
    """The broadcast messages the customer's family was sent, oldest first, each with its latest
    delivery status (sent, delivered, read, failed) when WhatsApp reported one."""
    statuses = message_statuses.c
    rows = conn.execute(
        select(_c.broadcast_id, _c.wamid, _c.updated_at, broadcasts.c.template, statuses.status)
        .join(broadcasts, broadcasts.c.id == _c.broadcast_id)
        .outerjoin(message_statuses, statuses.wamid == _c.wamid)
        .where(_c.customer_id.in_(family_ids(conn, customer_id)), _in(DeliveryState.SENT))
        .order_by(_c.updated_at)
    )
    return [Received(r.broadcast_id, r.template, r.wamid, from_db(r.updated_at), r.status) for r in rows]


def set_rate(conn: Connection, broadcast_id: str, rate: float) -> None:
    """Every worker reads the broadcast's rate from here, on whatever host it runs."""
    conn.execute(update(broadcasts).where(broadcasts.c.id == broadcast_id).values(rate=rate))


def state_counts(conn: Connection, broadcast_id: str) -> Counter[DeliveryState]:
    rows = conn.execute(
        select(_c.state, func.count()).where(_c.broadcast_id == broadcast_id).group_by(_c.state)
    )
    return Counter({DeliveryState(state): count for state, count in rows})


def next_retry(conn: Connection, broadcast_id: str) -> datetime | None:
    """When the earliest delivery waiting out a pair limit may be claimed again."""
    value = conn.execute(
        select(func.min(_c.retry_at)).where(_c.broadcast_id == broadcast_id, _in(DeliveryState.PENDING))
    ).scalar_one_or_none()
    return None if value is None else from_db(value)


def active_broadcasts(conn: Connection) -> list[str]:
    """Broadcasts with deliveries still to claim (pending, or claimed by a worker), oldest first."""
    rows = conn.execute(
        select(broadcasts.c.id)
        .where(select(_c.customer_id).where(_c.broadcast_id == broadcasts.c.id, _in(*states.TO_DO)).exists())
        .order_by(broadcasts.c.created_at)
    )
    return [row.id for row in rows]


def pending_counts(conn: Connection, broadcast_id: str) -> tuple[int, int]:
    """(pending deliveries, of them opted out since the selection: they will be skipped)."""
    allowed = marketing_allowed_clause(customers)
    total, sendable = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((allowed, 1), else_=0)), 0))
        .select_from(broadcast_deliveries.join(customers, customers.c.id == _c.customer_id))
        .where(and_(_c.broadcast_id == broadcast_id, _in(*states.TO_DO)))
    ).one()
    return total, total - sendable
