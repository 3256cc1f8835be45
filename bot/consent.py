"""May we send marketing to this customer? The one place that answers it, in Python and in SQL.

The rule: marketing is allowed unless the customer has an OPT_OUT tag. An opt-out is permanent:
a later "resume" or "signup" (from Meta's marketing preferences or a text) is kept in the consent
history but does not remove the tag, and nothing in this code base removes it (the database
refuses to as well, see migration 0002).

A number we have never seen has no OPT_OUT tag, so it is allowed. That answers the opt-out
question only: whether a number opted *in* to marketing (WhatsApp's policy) is up to whoever
builds the audience, and a broadcast audience comes from the customers table anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exists, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement, FromClause

from bot.schema import customers, tags
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


def marketing_allowed(tag_names: Iterable[str]) -> bool:
    return OPT_OUT not in set(tag_names)


def marketing_allowed_clause(customers_table: FromClause) -> ColumnElement:
    """SQL for `marketing_allowed`, correlated to `customers_table` (the table or an alias of it).

    For the broadcast audience: `select(c.wa_id).where(marketing_allowed_clause(c))`.
    """
    return ~exists().where(
        tags.c.customer_id == customers_table.c.id,
        tags.c.name == OPT_OUT,
    )


def may_send_marketing(conn: Connection, wa_id: str) -> bool:
    """Raises ValueError for something that is not a phone number rather than guess."""
    names = conn.execute(
        select(tags.c.name)
        .join(customers, customers.c.id == tags.c.customer_id)
        .where(customers.c.wa_id == normalise_wa_id(wa_id))
    ).scalars()
    return marketing_allowed(names)
