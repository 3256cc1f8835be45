"""The opt-out link's database work: who a token is about, and their opt-out with source `link`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from bot.consent import OPT_OUT
from bot.db import transaction
from bot.opt_out_link.texts import PageTexts
from bot.opt_out_link.token import LinkClaim
from bot.schema import broadcast_deliveries, broadcasts, customers, tags
from bot.store.evidence import ConsentEvidence, Question
from bot.store.identities import family_ids, live
from bot.store.tags import record_opt_out
from bot.store.timestamps import from_db, now

LINK_SOURCE = "link"
LINK_PAGE = "opt_out_link_page"  # the "response" of the evidence: the page's question


@dataclass(frozen=True, slots=True)
class LinkTarget:
    customer_key: str  # the live customer: the token's customer, or the one it was merged into
    broadcast_id: str
    template: str
    language: str  # the customer's language when known, else the template's: the page speaks it
    message_id: str | None  # the wamid of the template message that carried the link
    opted_out_at: datetime | None


def link_target(claim: LinkClaim) -> LinkTarget | None:
    """None unless this broadcast was addressed to this customer's family: a genuine token for a
    pair we have no delivery of (another installation's secret reused, a database restored from
    before the broadcast) names nobody we may opt out.

    The token names the customer as they were when the message went out; merges since then (or
    between selection and sending: the delivery row keeps the customer selected, the token the live
    one) make them part of a family, and the family is who opts out (bot.consent reads it whole)."""
    with transaction() as conn:
        exists = conn.execute(
            select(customers.c.id).where(customers.c.id == claim.customer_id)
        ).scalar_one_or_none()
        if exists is None:
            return None
        customer = live(conn, claim.customer_id)
        family = family_ids(conn, customer.id)
        d, b = broadcast_deliveries.c, broadcasts.c
        row = conn.execute(
            select(d.wamid, b.template, b.language)
            .join(broadcasts, b.id == d.broadcast_id)
            .where(d.broadcast_id == claim.broadcast_id, d.customer_id.in_(family))
            # Two members may each have had a delivery before their merge: the one sent counts.
            .order_by(d.wamid.is_(None), d.customer_id)
            .limit(1)
        ).one_or_none()
        if row is None:
            return None
        known = conn.execute(select(customers.c.language).where(customers.c.id == customer.id)).scalar_one()
        opted_out_at = conn.execute(
            select(func.min(tags.c.added_at)).where(tags.c.customer_id.in_(family), tags.c.name == OPT_OUT)
        ).scalar_one_or_none()
    return LinkTarget(
        customer_key=customer.key,
        broadcast_id=claim.broadcast_id,
        template=row.template,
        language=known or row.language,
        message_id=row.wamid,
        opted_out_at=None if opted_out_at is None else from_db(opted_out_at),
    )


def link_evidence(target: LinkTarget, texts: PageTexts, language: str, business: str) -> ConsentEvidence:
    """Pure: what the customer used (the link of this broadcast's template), the page's question
    and buttons as shown, and the button they pressed (bot/store/evidence.py)."""
    question = Question(
        LINK_PAGE,
        texts.question.format(business=business),
        (texts.confirm, texts.keep),
        ("stop", "keep"),  # the form's `choice` values
    )
    return ConsentEvidence(
        language=language,
        words=f"opt-out link of broadcast {target.broadcast_id} (template {target.template})",
        request_message_id=target.message_id,
        question=question,
        answer=texts.confirm,
    )


def opt_out(target: LinkTarget, evidence: ConsentEvidence | None = None) -> bool:
    """Write OPT_OUT (source `link`) with the broadcast and template it came from; True when this
    call created it. The template message's wamid is the event's message id, so a second confirm
    of the same link adds nothing to the consent history."""
    detail = json.dumps({"broadcast": target.broadcast_id, "template": target.template}, sort_keys=True)
    with transaction() as conn:
        result = record_opt_out(
            conn, target.customer_key, LINK_SOURCE, target.message_id, now(), detail=detail, evidence=evidence
        )
    return result.created
