"""The opt-out link's database work: who a token is about, and their opt-out with source `link`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from bot.consent import OPT_OUT
from bot.db import transaction
from bot.opt_out_link.token import LinkClaim
from bot.schema import broadcast_deliveries, broadcasts, tags
from bot.store.identities import family_ids, live
from bot.store.tags import record_opt_out
from bot.store.timestamps import from_db, now

LINK_SOURCE = "link"


@dataclass(frozen=True, slots=True)
class LinkTarget:
    customer_key: str  # the live customer (the token names the row the broadcast was sent to)
    broadcast_id: str
    template: str
    language: str  # the template's language code: the page speaks it
    message_id: str | None  # the wamid of the template message that carried the link
    opted_out_at: datetime | None


def link_target(claim: LinkClaim) -> LinkTarget | None:
    """None unless this broadcast was addressed to this customer: a genuine token for a pair we
    have no delivery of (another installation's secret reused, a database restored from before the
    broadcast) names nobody we may opt out."""
    with transaction() as conn:
        d, b = broadcast_deliveries.c, broadcasts.c
        row = conn.execute(
            select(d.customer_id, d.wamid, b.template, b.language)
            .join(broadcasts, b.id == d.broadcast_id)
            .where(d.broadcast_id == claim.broadcast_id, d.customer_id == claim.customer_id)
        ).one_or_none()
        if row is None:
            return None
        customer = live(conn, row.customer_id)
        opted_out_at = conn.execute(
            select(func.min(tags.c.added_at)).where(
                tags.c.customer_id.in_(family_ids(conn, customer.id)), tags.c.name == OPT_OUT
            )
        ).scalar_one_or_none()
    return LinkTarget(
        customer_key=customer.key,
        broadcast_id=claim.broadcast_id,
        template=row.template,
        language=row.language,
        message_id=row.wamid,
        opted_out_at=None if opted_out_at is None else from_db(opted_out_at),
    )


def opt_out(target: LinkTarget) -> bool:
    """Write OPT_OUT (source `link`) with the broadcast and template it came from; True when this
    call created it. The template message's wamid is the event's message id, so a second confirm
    of the same link adds nothing to the consent history."""
    detail = json.dumps({"broadcast": target.broadcast_id, "template": target.template}, sort_keys=True)
    with transaction() as conn:
        result = record_opt_out(
            conn, target.customer_key, LINK_SOURCE, target.message_id, now(), detail=detail
        )
    return result.created
