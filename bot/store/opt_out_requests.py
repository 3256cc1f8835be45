"""Opt-out requests: the customer asked to stop and has not confirmed yet.

While a request is open, `bot.consent` allows no marketing to the customer. The bot opens one when
the customer asks to stop (`action_check_opt_out`, before "Do you want to stop...?"), and it is
resolved by their answer: "yes" writes the OPT_OUT tag and resolves it as `opted_out` in the same
transaction (`bot.store.tags.record_opt_out`, whatever the opt-out's source); "no" resolves it as
`kept` and marketing may resume. An unanswered or unclear confirmation leaves it open: the
suppression lasts until the customer answers a later confirmation.

One open request per customer (a partial unique index): asking again while one is open adds
nothing, and the open one keeps when and how they first asked. Resolved requests stay, as evidence.
A merged customer's family counts as one (bot/store/identities.py): a request open under either
half suppresses marketing to both, and the answer resolves it wherever it was recorded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from bot.consent import check_source, opt_out_request_open, opted_out
from bot.db import insert_or_ignore
from bot.schema import opt_out_requests
from bot.store.customers import ensure_customer
from bot.store.identities import family_ids, resolve
from bot.store.timestamps import to_db

OPTED_OUT = "opted_out"
KEPT = "kept"


def request_opt_out(
    conn: Connection,
    wa_id: str,
    source: str,
    message_id: str | None,
    at: datetime,
    name: str | None = None,
) -> bool:
    """The customer asked to stop: from now on no marketing until they answer.

    Returns False, writing no request, when they have already opted out (there is nothing to
    confirm); True when a request is open (this one, or an earlier one still unanswered).
    """
    check_source(source)
    customer_id, _ = ensure_customer(conn, wa_id, name)
    if conn.execute(select(opted_out(customer_id))).scalar_one():
        return False
    if conn.execute(select(opt_out_request_open(customer_id))).scalar_one():
        return True  # asked before, under this or a merged-in identity: that one stays
    request = {
        "customer_id": customer_id,
        "requested_at": to_db(at),
        "source": source,
        "message_id": message_id,
    }
    insert_or_ignore(conn, opt_out_requests, request)
    return True


def keep_marketing(conn: Connection, wa_id: str, message_id: str | None, at: datetime) -> bool:
    """The customer answered "no" (keep the messages): marketing may reach them again.

    True if an open request was resolved; False if there was none (nothing was suppressed).
    """
    customer = resolve(conn, wa_id)
    if customer is None:
        return False
    return resolve_open_request(conn, customer.id, KEPT, message_id, at)


def resolve_open_request(
    conn: Connection, customer_id: int, resolution: str, message_id: str | None, at: datetime
) -> bool:
    """Close the open requests of the customer's family, if any; True if there was one. Only this
    may change a request, and the database lets it (migration 0004): open -> resolved, once."""
    if resolution not in (OPTED_OUT, KEPT):
        raise ValueError(f"not a resolution: {resolution!r}")
    resolved = conn.execute(
        update(opt_out_requests)
        .where(
            opt_out_requests.c.customer_id.in_(family_ids(conn, customer_id)),
            opt_out_requests.c.resolved_at.is_(None),
        )
        .values(resolved_at=to_db(at), resolution=resolution, resolution_message_id=message_id)
    )
    return resolved.rowcount >= 1
