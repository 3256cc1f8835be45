"""May we send marketing to this customer? The one place that answers it, in Python and in SQL.

The rule: marketing is allowed unless the customer has an OPT_OUT tag, an open opt-out request, or
an identifier on the suppression list (or was erased).

"The customer" is a person, not an identifier: a customer's *family* (itself and every customer
merged into it, bot/store/identities.py) counts as one. An opt-out recorded under a BSUID applies
to the phone number it is later linked to, and the other way round, from the moment of the link;
nothing is copied, the rule reads the whole family. Whatever identifier a sender is given (phone
number, BSUID, parent BSUID or customer key), `bot.store.marketing_consent.may_send_marketing` resolves it to the customer
first, so it is the same answer for each.

An open request (table opt_out_requests, bot/store/opt_out_requests.py) means the customer asked to
stop and has not confirmed yet. Until they answer, the request is taken as covering all marketing
(as the FCC's 2024 revocation rules expect of a confirmation question): broadcasts, playbooks, everything. Their "no" (keep
the messages) resolves it and marketing may resume; their "yes" writes the OPT_OUT tag and
resolves it; if they never answer, it stays open, and so does the suppression.

An opt-out is permanent: a later "resume" or "signup" (from Meta's marketing preferences or a text)
is kept in the consent history but does not remove the tag, and nothing in this code base removes
it (the database refuses to as well, see migration 0002).

The suppression list (table suppressions) holds the keyed hashes of the identifiers of customers
who asked to be forgotten (`python -m bot customers forget`, bot/store/erasure.py): their personal
data is gone, so no tag can name them any more. A customer holding one of those identifiers
again (an import of an old list, the person writing again, a recycled number) gets no marketing;
an identifier on the list is never imported (bot/store/customer_import.py), and one nobody holds
is refused too. Every identity row carries its keyed hash (bot/store/keyed_hash.py), so the SQL
form of the rule is a join, like the others.

A number we have never seen has no OPT_OUT tag, so it is allowed unless it is on the suppression
list. That answers the opt-out question only: whether a number opted *in* to marketing (WhatsApp's
policy) is up to whoever builds the audience, and a broadcast audience comes from the customers
table anyway. What an erasure left of a customer (an anonymous row) is never marketed to either.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Table, and_, exists, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement, FromClause

from bot.schema import customer_identities, customers, opt_out_requests, suppressions, tags

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
        "link",  # the opt-out link of a marketing template (bot/opt_out_link)
    }
)

# Consent history kinds written by the store itself; callers add others (resume, signup, ...).
OPT_OUT_EVENT = "opt_out"
OPT_OUT_REPEATED = "opt_out_repeated"
# The customer answered "no" to the confirmation (actions/opt_out.py): history only, with evidence.
KEPT_MARKETING = "kept_marketing"


def check_source(source: str) -> None:
    """Refuse a source outside SOURCES, before anything is written with it."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(sorted(SOURCES))}")


def marketing_allowed(tag_names: Iterable[str], *, opt_out_requested: bool, suppressed: bool = False) -> bool:
    """Pure: `tag_names` are the tags of the customer's whole family, `opt_out_requested` whether
    any member has an open (unconfirmed) request to stop, `suppressed` whether any identifier of
    theirs is on the suppression list."""
    return not suppressed and not opt_out_requested and OPT_OUT not in set(tag_names)


def marketing_allowed_clause(customers_table: FromClause) -> ColumnElement:
    """SQL for `marketing_allowed`, correlated to `customers_table` (the table or an alias of it)
    whose rows are live customers.

    For the broadcast audience: `select(c.key).where(marketing_allowed_clause(c))`.
    """
    customer_id = customers_table.c.id
    return and_(~opted_out(customer_id), ~opt_out_request_open(customer_id), ~suppressed(customer_id))


def _family_has(table: Table, condition: ColumnElement, customer_id: ColumnElement | int) -> ColumnElement:
    """SQL: a row of `table` (tags, opt_out_requests, customer_identities) matching `condition`
    belongs to the family of `customer_id` (the live customer: itself, or a customer merged into
    it), correlated to the caller's query when `customer_id` is a column.

    Two EXISTS, not one with `id = X OR merged_into = X`: with the OR, SQLite scanned the whole
    table once per customer (about 1 ms per customer of a broadcast batch at 20,000 customers);
    each half here is an index search (the table's customer_id, ix_customers_merged_into)."""
    member = customers.alias("family_member")
    # correlate_except: the caller's query may itself read `table` (an identity, a tag).
    own = exists(
        select(table.c.customer_id)
        .where(condition, table.c.customer_id == customer_id)
        .correlate_except(table)
    )
    merged = exists(
        select(member.c.id)
        .select_from(member.join(table, table.c.customer_id == member.c.id))
        .where(condition, member.c.merged_into == customer_id)
        .correlate_except(member, table)
    )
    return or_(own, merged)


def opted_out(customer_id: ColumnElement | int) -> ColumnElement:
    """SQL: the customer's family (an id, or a column correlated to one) has the OPT_OUT tag."""
    return _family_has(tags, tags.c.name == OPT_OUT, customer_id)


def opt_out_request_open(customer_id: ColumnElement | int) -> ColumnElement:
    """SQL: the customer's family (an id, or a column correlated to one) has an unresolved
    opt-out request."""
    return _family_has(opt_out_requests, opt_out_requests.c.resolved_at.is_(None), customer_id)


def suppressed(customer_id: ColumnElement | int) -> ColumnElement:
    """SQL: an identifier of the customer's family (active or former) is on the suppression list,
    or the customer is what an erasure left (its pending deliveries, its old opt-out link)."""
    on_list = customer_identities.c.keyed_hash.in_(select(suppressions.c.keyed_hash))
    member = customers.alias("erased_member")
    # Two EXISTS for the index searches, as in `_family_has`.
    erased = or_(
        exists(select(member.c.id).where(member.c.erased_at.is_not(None), member.c.id == customer_id)),
        exists(
            select(member.c.id).where(member.c.erased_at.is_not(None), member.c.merged_into == customer_id)
        ),
    )
    return or_(erased, _family_has(customer_identities, on_list, customer_id))


def customer_may_receive_marketing(conn: Connection, customer_id: int) -> bool:
    """The rule for a live customer's id."""
    row = conn.execute(
        select(
            opted_out(customer_id).label("out"),
            opt_out_request_open(customer_id).label("requested"),
            suppressed(customer_id).label("suppressed"),
        )
    ).one()
    return marketing_allowed(
        (OPT_OUT,) if row.out else (),
        opt_out_requested=bool(row.requested),
        suppressed=bool(row.suppressed),
    )


def customers_allowed_marketing(conn: Connection, live_customer_ids: Iterable[int]) -> set[int]:
    """The rule for many live customers at once (a broadcast batch): those marketing may reach."""
    rows = conn.execute(
        select(customers.c.id).where(
            customers.c.id.in_(list(live_customer_ids)), marketing_allowed_clause(customers)
        )
    )
    return {row.id for row in rows}
