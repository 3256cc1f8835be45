"""May we send marketing to this customer? The one place that answers it, in Python and in SQL.

The rule: marketing is allowed unless the customer has an OPT_OUT tag or an open opt-out request.

An open request (table opt_out_requests, bot/store/opt_out_requests.py) means the customer asked to
stop and has not confirmed yet. Until they answer, the request is taken as covering all marketing
(as the FCC's 2024 revocation rules expect of a confirmation question): broadcasts, playbooks, everything. Their "no" (keep
the messages) resolves it and marketing may resume; their "yes" writes the OPT_OUT tag and
resolves it; if they never answer, it stays open, and so does the suppression.

An opt-out is permanent: a later "resume" or "signup" (from Meta's marketing preferences or a text)
is kept in the consent history but does not remove the tag, and nothing in this code base removes
it (the database refuses to as well, see migration 0002).

A number we have never seen has no OPT_OUT tag, so it is allowed. That answers the opt-out
question only: whether a number opted *in* to marketing (WhatsApp's policy) is up to whoever
builds the audience, and a broadcast audience comes from the customers table anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, exists, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement, FromClause

from bot.schema import customers, opt_out_requests, tags
from bot.store.phone_numbers import normalise_wa_id

OPT_OUT = "OPT_OUT"

# How a tag or consent event reached us.
SOURCES = frozenset(
    {
        "text",  # the customer wrote it
        "button",  # a reply button of an interactive message
        "template",  # a quick-reply button of a template ("Stop promotions")
        "meta_preferences",  # WhatsApp's own stop/resume promotions (user_preferences webhook)
        "meta_131050",  # Meta refused a marketing message: the user stopped marketing messages
        "import",  # `python -m bot customers import`
    }
)

# Consent history kinds written by the store itself; callers add others (resume, signup, ...).
OPT_OUT_EVENT = "opt_out"
OPT_OUT_REPEATED = "opt_out_repeated"


def check_source(source: str) -> None:
    """Refuse a source outside SOURCES, before anything is written with it."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(sorted(SOURCES))}")


def marketing_allowed(tag_names: Iterable[str], *, opt_out_requested: bool) -> bool:
    """Pure: `opt_out_requested` is whether the customer has an open (unconfirmed) request to stop."""
    return not opt_out_requested and OPT_OUT not in set(tag_names)


def marketing_allowed_clause(customers_table: FromClause) -> ColumnElement:
    """SQL for `marketing_allowed`, correlated to `customers_table` (the table or an alias of it).

    For the broadcast audience: `select(c.wa_id).where(marketing_allowed_clause(c))`.
    """
    return and_(~opted_out(customers_table.c.id), ~opt_out_request_open(customers_table.c.id))


def opted_out(customer_id: ColumnElement | int) -> ColumnElement:
    """SQL: the customer (an id, or a column correlated to one) has the OPT_OUT tag."""
    return exists().where(tags.c.customer_id == customer_id, tags.c.name == OPT_OUT)


def opt_out_request_open(customer_id: ColumnElement | int) -> ColumnElement:
    """SQL: the customer (an id, or a column correlated to one) has an unresolved opt-out request."""
    return exists().where(
        opt_out_requests.c.customer_id == customer_id,
        opt_out_requests.c.resolved_at.is_(None),
    )


def may_send_marketing(conn: Connection, wa_id: str) -> bool:
    """Raises ValueError for something that is not a phone number rather than guess."""
    customer = conn.execute(
        select(customers.c.id, opt_out_request_open(customers.c.id).label("requested")).where(
            customers.c.wa_id == normalise_wa_id(wa_id)
        )
    ).one_or_none()
    if customer is None:
        return marketing_allowed((), opt_out_requested=False)
    names = conn.execute(select(tags.c.name).where(tags.c.customer_id == customer.id)).scalars()
    return marketing_allowed(names, opt_out_requested=bool(customer.requested))
