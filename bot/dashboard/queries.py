"""What the dashboard reads from the database. SELECTs only: the dashboard never writes consent.

Each function takes the caller's connection; the app runs them in one short transaction each,
off the event loop (`bot.db.run_sync`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement, ScalarSelect

from bot.broadcast import deliveries
from bot.broadcast.deliveries import Broadcast
from bot.broadcast.report import Report, aggregate, load_rows
from bot.consent import OPT_OUT, opt_out_request_open
from bot.schema import (
    broadcasts,
    customer_identities,
    customers,
    inbound_messages,
    message_statuses,
    tags,
)
from bot.store.identities import resolve
from bot.store.timestamps import from_db

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class CustomerRow:
    key: str  # the customer key: the profile's address, whatever identifiers change
    name: str | None
    last_seen_at: datetime | None
    tags: tuple[str, ...]
    opt_out_requested: bool = False  # asked to stop, not confirmed (yet): no marketing meanwhile
    phone: str | None = None  # the active phone number, if WhatsApp ever shared one
    bsuid: str | None = None  # the active BSUID (or parent BSUID), for customers without a number
    username: str | None = None  # display data, never a key


@dataclass(frozen=True, slots=True)
class CustomerPage:
    rows: list[CustomerRow]
    total: int  # customers matching the search and filter
    page: int
    has_next: bool


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere; % and _ typed by the user are literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def customer_page(
    conn: Connection, search: str = "", tag: str = "", page: int = 1, page_size: int = PAGE_SIZE
) -> CustomerPage:
    """Customers whose name, username, number or BSUID contains `search`, with `tag` if given;
    newest activity first. Identifiers recorded under a customer merged into another count for
    the survivor (the list shows live customers only)."""
    c = customers.c
    # Live customers only: a merged-away one is shown as part of the customer it was merged into;
    # a forgotten one (`customers forget`) is nobody any more.
    conditions = [c.merged_into.is_(None), c.erased_at.is_(None)]
    search = search.strip()
    if search:
        conditions.append(or_(*_matches(search)))
    if tag:
        conditions.append(exists().where(and_(tags.c.customer_id == c.id, tags.c.name == tag)))
    where = and_(true(), *conditions)
    total = conn.execute(select(func.count()).select_from(customers).where(where)).scalar_one()
    page = max(1, page)
    rows = conn.execute(
        select(
            c.id,
            c.key,
            _active(c.id, ("phone",)).label("phone"),
            _active(c.id, ("bsuid", "parent_bsuid")).label("bsuid"),
            c.name,
            c.username,
            c.last_seen_at,
            opt_out_request_open(c.id).label("requested"),
        )
        .where(where)
        # Customers who never wrote (imported) last; SQLite and PostgreSQL disagree on NULL order.
        .order_by(c.last_seen_at.is_(None), c.last_seen_at.desc(), c.id.desc())
        .limit(page_size + 1)
        .offset((page - 1) * page_size)
    ).all()
    shown = rows[:page_size]
    tag_names: dict[int, list[str]] = {row.id: [] for row in shown}
    if shown:
        for customer_id, name in conn.execute(
            select(tags.c.customer_id, tags.c.name)
            .where(tags.c.customer_id.in_(list(tag_names)))
            .order_by(tags.c.name)
        ):
            tag_names[customer_id].append(name)
    return CustomerPage(
        rows=[
            CustomerRow(
                key=row.key,
                name=row.name,
                last_seen_at=None if row.last_seen_at is None else from_db(row.last_seen_at),
                tags=tuple(tag_names[row.id]),
                opt_out_requested=bool(row.requested),
                phone=row.phone,
                bsuid=row.bsuid,
                username=row.username,
            )
            for row in shown
        ],
        total=total,
        page=page,
        has_next=len(rows) > page_size,
    )


def _matches(search: str) -> list[ColumnElement]:
    """SQL conditions on `customers`, any of which makes a customer match the search text."""
    c = customers.c
    ci = customer_identities.c
    text = search.lower()
    handle = text.removeprefix("@")  # "@ana.example" and "ana.example" find the same username
    matches = [
        func.lower(c.name).like(_like_pattern(text), escape="\\"),
        func.lower(c.username).like(_like_pattern(handle), escape="\\"),
        # A BSUID typed in any case ("de.7730..."), over the identities of the whole family.
        _family_identity(func.lower(ci.value).like(_like_pattern(text), escape="\\")),
    ]
    digits = "".join(ch for ch in search if ch.isdigit())
    if digits:  # "+1 650-555" finds 1650555...
        matches.append(
            _family_identity(and_(ci.kind == "phone", ci.value.like(_like_pattern(digits), escape="\\")))
        )
    return matches


def _family_identity(condition: ColumnElement) -> ColumnElement:
    """SQL: the (correlated) live customer or one merged into it has an identity matching."""
    holder = customers.alias("holder")
    ci = customer_identities.c
    return exists().where(
        ci.customer_id == holder.c.id,
        func.coalesce(holder.c.merged_into, holder.c.id) == customers.c.id,
        condition,
    )


def _active(customer_id: ColumnElement, kinds: tuple[str, ...]) -> ScalarSelect:
    """SQL: the (correlated) live customer's newest active identifier of these kinds, over its
    family; NULL without one."""
    holder = customers.alias("holder")
    ci = customer_identities.c
    return (
        select(ci.value)
        .join(holder, holder.c.id == ci.customer_id)
        .where(
            func.coalesce(holder.c.merged_into, holder.c.id) == customer_id,
            ci.kind.in_(kinds),
            ci.status == "active",
        )
        .order_by(ci.kind == "parent_bsuid", ci.last_seen_at.desc(), ci.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def tag_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(tags.c.name).distinct().order_by(tags.c.name)).scalars())


@dataclass(frozen=True, slots=True)
class OptOutTotals:
    customers: int
    opted_out: int
    by_source: dict[str, int]


def opt_out_totals(conn: Connection) -> OptOutTotals:
    by_source = dict(
        conn.execute(
            select(tags.c.source, func.count()).where(tags.c.name == OPT_OUT).group_by(tags.c.source)
        ).all()
    )
    return OptOutTotals(
        customers=conn.execute(select(func.count()).select_from(customers)).scalar_one(),
        opted_out=sum(by_source.values()),
        by_source=by_source,
    )


def opt_out_times(conn: Connection, since: datetime) -> list[datetime]:
    """When each OPT_OUT tag was added, from `since` on (bucketed in Python: portable SQL)."""
    return [
        from_db(at)
        for at in conn.execute(
            select(tags.c.added_at).where(tags.c.name == OPT_OUT, tags.c.added_at >= since)
        ).scalars()
    ]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A message to or from the customer as the webhooks recorded it (no text is stored)."""

    at: datetime
    direction: str  # in | out
    wamid: str
    status: str
    error_code: int | None


def delivery_records(conn: Connection, key: str, wa_id: str | None, limit: int = 200) -> list[DeliveryRecord]:
    """What the database knows of the conversation (customer `key`, phone number `wa_id`) when
    Rasa's tracker cannot be read."""
    statuses = message_statuses.c
    inbound = inbound_messages.c
    records = [
        DeliveryRecord(from_db(row.status_at), "out", row.wamid, row.status, row.error_code)
        for row in conn.execute(
            select(statuses.wamid, statuses.status, statuses.error_code, statuses.status_at)
            .where(statuses.recipient_id == wa_id)
            .order_by(statuses.status_at.desc())
            .limit(limit)
        )
    ]
    records += [
        DeliveryRecord(from_db(row.claimed_at), "in", row.wamid, row.state, None)
        for row in conn.execute(
            select(inbound.wamid, inbound.state, inbound.claimed_at)
            .where(inbound.customer_key == key)
            .order_by(inbound.claimed_at.desc())
            .limit(limit)
        )
    ]
    return sorted(records, key=lambda record: record.at)[-limit:]


def broadcasts_received(conn: Connection, key: str) -> list[deliveries.Received]:
    """The broadcast messages the customer (by key) was sent, for the conversation view."""
    customer = resolve(conn, key)
    return [] if customer is None else deliveries.received_by(conn, customer.id)


def broadcast_reports(conn: Connection, limit: int = 50) -> list[tuple[Broadcast, Report]]:
    """The newest broadcasts, each with its report."""
    ids = conn.execute(
        select(broadcasts.c.id).order_by(broadcasts.c.created_at.desc()).limit(limit)
    ).scalars()
    return [report for broadcast_id in list(ids) if (report := broadcast_report(conn, broadcast_id))]


def broadcast_report(conn: Connection, broadcast_id: str) -> tuple[Broadcast, Report] | None:
    broadcast = deliveries.get(conn, broadcast_id)
    if broadcast is None:
        return None
    return broadcast, aggregate(load_rows(conn, broadcast_id), broadcast.excluded_opted_out)
