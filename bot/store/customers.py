"""Customer rows: created on first contact (or import), kept current by inbound messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.engine import Connection

from bot.consent import marketing_allowed
from bot.db import insert_or_ignore
from bot.schema import consent_events, customers, opt_out_requests, tags
from bot.store.phone_numbers import normalise_wa_id
from bot.store.timestamps import iso, to_db


def touch_customer(conn: Connection, wa_id: str, name: str | None, seen_at: datetime) -> int:
    """Record an inbound message from `wa_id` at `seen_at`; returns the customer id.

    Messages may be processed out of order: first_seen_at only moves back, last_seen_at only
    moves forward, and the name (WhatsApp profile name, when given) is taken from the newest one.
    """
    wa_id = normalise_wa_id(wa_id)
    seen_at = to_db(seen_at)
    name = name or None
    values = {"wa_id": wa_id, "name": name, "first_seen_at": seen_at, "last_seen_at": seen_at}
    if not insert_or_ignore(conn, customers, values):
        c = customers.c
        newest = or_(c.last_seen_at.is_(None), c.last_seen_at <= seen_at)
        changes: dict[str, Any] = {
            "first_seen_at": case(
                (or_(c.first_seen_at.is_(None), c.first_seen_at > seen_at), seen_at),
                else_=c.first_seen_at,
            ),
            "last_seen_at": case((newest, seen_at), else_=c.last_seen_at),
        }
        if name:
            changes["name"] = case((newest, name), else_=c.name)
        conn.execute(update(customers).where(c.wa_id == wa_id).values(changes))
    return _customer_id(conn, wa_id)


def ensure_customer(conn: Connection, wa_id: str, name: str | None = None) -> tuple[int, bool]:
    """The customer's id, creating the row if needed; a given name replaces the stored one.

    Returns (id, created). Unlike `touch_customer` this claims no sighting: seen times stay as they
    are (NULL for a new customer), e.g. for an import or a consent notice from Meta.
    """
    wa_id = normalise_wa_id(wa_id)
    name = name or None
    created = insert_or_ignore(conn, customers, {"wa_id": wa_id, "name": name})
    if name and not created:
        conn.execute(update(customers).where(customers.c.wa_id == wa_id).values(name=name))
    return _customer_id(conn, wa_id), created


def _customer_id(conn: Connection, wa_id: str) -> int:
    return conn.execute(select(customers.c.id).where(customers.c.wa_id == wa_id)).scalar_one()


def profile(conn: Connection, wa_id: str) -> dict[str, Any] | None:
    """Everything the store knows about a customer, JSON-ready (times as ISO-8601 UTC strings).

    None for a number the store has never seen; ValueError for something that is not a number.
    """
    row = conn.execute(select(customers).where(customers.c.wa_id == normalise_wa_id(wa_id))).one_or_none()
    if row is None:
        return None
    tag_rows = conn.execute(
        select(tags).where(tags.c.customer_id == row.id).order_by(tags.c.added_at, tags.c.id)
    ).all()
    event_rows = conn.execute(
        select(consent_events)
        .where(consent_events.c.customer_id == row.id)
        .order_by(consent_events.c.occurred_at, consent_events.c.id)
    ).all()
    # The open one, if any; resolved requests are kept as evidence but change nothing.
    request = conn.execute(
        select(opt_out_requests).where(
            opt_out_requests.c.customer_id == row.id, opt_out_requests.c.resolved_at.is_(None)
        )
    ).one_or_none()
    return {
        "wa_id": row.wa_id,
        "name": row.name,
        "first_seen_at": iso(row.first_seen_at),
        "last_seen_at": iso(row.last_seen_at),
        "marketing_allowed": marketing_allowed(
            (tag.name for tag in tag_rows), opt_out_requested=request is not None
        ),
        # Asked to stop and not confirmed (yet): no marketing until they answer.
        "opt_out_request": None
        if request is None
        else {
            "requested_at": iso(request.requested_at),
            "source": request.source,
            "message_id": request.message_id,
        },
        "tags": [
            {
                "name": tag.name,
                "added_at": iso(tag.added_at),
                "source": tag.source,
                "message_id": tag.message_id,
            }
            for tag in tag_rows
        ],
        "consent_history": [
            {
                "kind": event.kind,
                "source": event.source,
                "message_id": event.message_id,
                "detail": event.detail,
                "occurred_at": iso(event.occurred_at),
                "recorded_at": iso(event.recorded_at),
            }
            for event in event_rows
        ],
    }
