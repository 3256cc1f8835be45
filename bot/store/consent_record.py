"""A customer's complete consent record, as `customers evidence` prints it and a regulator reads it.

Who (the key, every identifier with how we learnt it, merges), the state now (marketing allowed?
opted out since when, how?), every consent event with its evidence (bot/store/evidence.py), and
every opt-out request, answered or not. Names and usernames are left out: they prove nothing
about consent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.consent import OPT_OUT
from bot.schema import opt_out_requests
from bot.store.customers import profile
from bot.store.identities import family_ids, resolve
from bot.store.timestamps import iso, now


def consent_record(conn: Connection, who: str) -> dict[str, Any] | None:
    """None for an identifier nobody has; ValueError for one that is none (like `profile`)."""
    customer = resolve(conn, who)
    found = None if customer is None else profile(conn, customer.key)
    if customer is None or found is None:
        return None
    r = opt_out_requests.c
    requests = conn.execute(
        select(opt_out_requests)
        .where(r.customer_id.in_(family_ids(conn, customer.id)))
        .order_by(r.requested_at, r.id)
    ).all()
    return {
        "generated_at": iso(now()),
        "customer": {
            "key": found["key"],
            "language": found["language"],
            "identities": found["identities"],
            "merged": found["merged"],
        },
        "marketing_allowed": found["marketing_allowed"],
        "suppressed": found["suppressed"],
        "opt_out": next((tag for tag in found["tags"] if tag["name"] == OPT_OUT), None),
        "consent_events": found["consent_history"],
        "opt_out_requests": [
            {
                "requested_at": iso(request.requested_at),
                "source": request.source,
                "message_id": request.message_id,
                "resolved_at": iso(request.resolved_at),
                "resolution": request.resolution,  # opted_out | kept | None: still open
                "resolution_message_id": request.resolution_message_id,
            }
            for request in requests
        ],
    }
