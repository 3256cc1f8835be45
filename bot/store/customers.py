"""Customer rows: created on first contact (or import), kept current by inbound messages.

Who a customer is (key, identities, merges) is bot/store/identities.py; this module keeps the
display data and seen times, and assembles the profile.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Update

from bot.consent import OPT_OUT, marketing_allowed, opt_out_request_open, opted_out, suppressed
from bot.schema import consent_events, customers, opt_out_requests, tags
from bot.store.evidence import evidence_record
from bot.store.identities import ensure, family_ids, identities_of, merges_of, phone_of, resolve
from bot.store.timestamps import iso, to_db


def touch_customer(
    conn: Connection, who: str, name: str | None, seen_at: datetime, username: str | None = None
) -> int:
    """Record an inbound message at `seen_at` from `who` (a customer key or one identifier; a new
    identifier makes a new customer); returns the live customer's id. See `record_sighting`."""
    customer, _ = ensure(conn, who, evidence="first_contact")
    record_sighting(conn, customer.id, name, username, seen_at)
    return customer.id


def record_sighting(
    conn: Connection, customer_id: int, name: str | None, username: str | None, seen_at: datetime
) -> None:
    """Record an inbound message from the (live) customer at `seen_at`.

    Messages may be processed out of order: first_seen_at only moves back, last_seen_at only
    moves forward, and the name and username (WhatsApp profile, when given) are taken from the
    newest one.
    """
    # The parameters' names differ from the columns': an UPDATE takes a parameter named like a
    # column as a value to SET.
    parameters: dict[str, Any] = {"sighted_customer": customer_id, "sighted_at": to_db(seen_at)}
    if name:
        parameters["sighted_name"] = name
    if username:
        parameters["sighted_username"] = username
    conn.execute(_sighting(bool(name), bool(username)), parameters)


@functools.cache
def _sighting(with_name: bool, with_username: bool) -> Update:
    """The sighting's UPDATE, built once per shape (every inbound message runs one; see
    bot/store/identities.py on statements built once)."""
    c = customers.c
    seen_at = bindparam("sighted_at")
    newest = or_(c.last_seen_at.is_(None), c.last_seen_at <= seen_at)
    changes: dict[str, Any] = {
        "first_seen_at": case(
            (or_(c.first_seen_at.is_(None), c.first_seen_at > seen_at), seen_at),
            else_=c.first_seen_at,
        ),
        "last_seen_at": case((newest, seen_at), else_=c.last_seen_at),
    }
    if with_name:
        changes["name"] = case((newest, bindparam("sighted_name")), else_=c.name)
    if with_username:
        changes["username"] = case((newest, bindparam("sighted_username")), else_=c.username)
    return update(customers).where(c.id == bindparam("sighted_customer")).values(changes)


def ensure_customer(conn: Connection, who: str, name: str | None = None) -> tuple[int, bool]:
    """The live customer's id for a key or identifier (phone number, BSUID, parent BSUID),
    creating the customer for an identifier nobody has; a given name replaces the stored one.

    Returns (id, created). Unlike `touch_customer` this claims no sighting: seen times stay as they
    are (NULL for a new customer), e.g. for an import or a consent notice from Meta.
    """
    customer, created = ensure(conn, who, evidence="import")
    if name:
        conn.execute(update(customers).where(customers.c.id == customer.id).values(name=name))
    return customer.id, created


def remember_language(conn: Connection, who: str, language: str) -> bool | None:
    """The customer's language was detected (actions/language.py): keep it on their profile.
    True when it changed, False when the profile already said so; None for an unknown customer,
    who is left alone (nothing to attach it to)."""
    customer = resolve(conn, who)
    if customer is None:
        return None
    c = customers.c
    changed = conn.execute(
        update(customers)
        .where(c.id == customer.id, or_(c.language.is_(None), c.language != language))
        .values(language=language)
    )
    return changed.rowcount == 1


def profile(conn: Connection, who: str) -> dict[str, Any] | None:
    """Everything the store knows about a customer, JSON-ready (times as ISO-8601 UTC strings).

    `who`: the customer key, a phone number, a BSUID or a parent BSUID; a merged-away customer's
    key or identifier shows the customer it was merged into. Tags, consent history and requests
    are the whole family's (see bot/store/identities.py); each consent event names the identifier it
    was captured under and the key of the customer it was recorded for.
    None for an identifier the store has never seen; ValueError for something that is none of these.
    """
    customer = resolve(conn, who)
    if customer is None:
        return None
    row = conn.execute(select(customers).where(customers.c.id == customer.id)).one()
    family = family_ids(conn, customer.id)
    keys = dict(conn.execute(select(customers.c.id, customers.c.key).where(customers.c.id.in_(family))).all())
    tag_rows = conn.execute(
        select(tags).where(tags.c.customer_id.in_(family)).order_by(tags.c.added_at, tags.c.id)
    ).all()
    event_rows = conn.execute(
        select(consent_events)
        .where(consent_events.c.customer_id.in_(family))
        .order_by(consent_events.c.occurred_at, consent_events.c.id)
    ).all()
    # The open ones, if any; resolved requests are kept as evidence but change nothing.
    requests = conn.execute(
        select(opt_out_requests)
        .where(opt_out_requests.c.customer_id.in_(family), opt_out_requests.c.resolved_at.is_(None))
        .order_by(opt_out_requests.c.requested_at, opt_out_requests.c.id)
    ).all()
    status = conn.execute(
        select(
            opted_out(customer.id).label("out"),
            opt_out_request_open(customer.id).label("open"),
            suppressed(customer.id).label("suppressed"),
        )
    ).one()
    request = requests[0] if requests else None
    return {
        "key": row.key,
        "wa_id": phone_of(conn, customer.id),  # the active phone number, if any
        "name": row.name,
        "username": row.username,
        "language": row.language,  # detected from their messages (actions/language.py); None: not yet
        "first_seen_at": iso(row.first_seen_at),
        "last_seen_at": iso(row.last_seen_at),
        # Forgotten (`customers forget`): what is left is anonymous.
        "erased_at": iso(row.erased_at),
        "marketing_allowed": marketing_allowed(
            (OPT_OUT,) if status.out else (),
            opt_out_requested=bool(status.open),
            suppressed=bool(status.suppressed),
        ),
        # An identifier of theirs is on the suppression list (a forgotten customer's): no marketing.
        "suppressed": bool(status.suppressed),
        "identities": [
            {
                "kind": identity["kind"],
                "value": identity["value"],
                "status": identity["status"],
                "evidence": identity["evidence"],
                "customer_key": keys[identity["customer_id"]],
                "first_seen_at": iso(identity["first_seen_at"]),
                "last_seen_at": iso(identity["last_seen_at"]),
                "superseded_at": iso(identity["superseded_at"]),
            }
            for identity in identities_of(conn, customer.id)
        ],
        "merged": [{**merge, "merged_at": iso(merge["merged_at"])} for merge in merges_of(conn, customer.id)],
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
                "identifier_kind": event.identifier_kind,
                "identifier_value": event.identifier_value,
                "customer_key": keys[event.customer_id],
                "evidence": evidence_record(event._mapping),
            }
            for event in event_rows
        ],
    }
