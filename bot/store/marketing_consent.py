"""May we send marketing to this sender? `bot.consent`'s rule, for any identifier.

`bot.consent` holds the rule (in Python and in SQL over the tables) and imports nothing from the
store; the store imports its names. What needs the store to answer — turning a phone number, BSUID
or key into the customer, hashing an identifier for the suppression list — lives here.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.consent import customer_may_receive_marketing, marketing_allowed
from bot.schema import suppressions
from bot.store.identifiers import Identifier, parse_human
from bot.store.identities import resolve
from bot.store.keyed_hash import hash_of


def identifier_suppressed(conn: Connection, identifier: Identifier) -> bool:
    """Is this identifier on the suppression list (a forgotten customer's), whoever holds it now?"""
    found = select(suppressions.c.keyed_hash).where(suppressions.c.keyed_hash == hash_of(identifier))
    return conn.execute(found).first() is not None


def may_send_marketing(conn: Connection, who: str) -> bool:
    """`who`: a customer key, phone number, BSUID or parent BSUID. ValueError for anything else
    rather than guess; an identifier nobody has is allowed unless it is on the suppression list
    (see the module docstring)."""
    customer = resolve(conn, who)
    if customer is None:
        return marketing_allowed(
            (), opt_out_requested=False, suppressed=identifier_suppressed(conn, parse_human(who))
        )
    return customer_may_receive_marketing(conn, customer.id)
