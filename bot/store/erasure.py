"""Erasure that keeps the opt-out (GDPR Art. 17): `python -m bot customers forget ID --operator NAME`.

The customer's personal data goes; what proves we honoured them stays, without naming them:

- gone: name, username, language, seen times, every identifier (phone numbers, BSUIDs), the
  customer's words, message ids (a wamid spells out the phone number in base64) and free-text
  details in the consent history, opt-out requests and merges, other tags (VIP...), the webhook
  inbox and delivery statuses of their messages, and their conversation in Rasa's tracker store
  (bot/store/conversations.py, deleted by the caller first);
- kept: the customer row under a fresh key (a migrated customer's key is its phone number), its
  OPT_OUT tag and consent events with their kinds, sources, times, and the response names and
  versions of the questions they were shown, its requests' times and outcomes, its broadcast
  deliveries' states (the reports' counts stay right);
- added: the keyed hash of each identifier on the suppression list (bot/store/keyed_hash.py),
  which bot.consent reads, so a customer holding one of them again gets no marketing, and an
  erasure record: when, the operator, how much went; no personal data.

The whole family counts as the customer (a merged customer and its halves are one person).

How this gets past the database guards, deliberately: migration 0006 lets a row of a customer
marked erased have its personal columns set to NULL (nothing else), and its identities be deleted;
a customer is marked erased only with an erasure record, which only the tables' owner can write
(the bot role reads it). Nothing is deleted that the guards protect: the OPT_OUT tag, the consent
events, the requests and the customer rows stay, anonymised in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from bot.consent import OPT_OUT
from bot.db import insert_or_ignore, scrub_deleted
from bot.schema import (
    broadcast_deliveries,
    consent_events,
    customer_identities,
    customer_merges,
    customers,
    erasures,
    inbound_messages,
    message_statuses,
    opt_out_requests,
    suppressions,
    tags,
)
from bot.store.identifiers import PHONE, Identifier, new_customer_key
from bot.store.identities import family_ids, resolve
from bot.store.keyed_hash import hash_of
from bot.store.timestamps import to_db

# The consent history's personal columns (migration 0006 lets an erasure set them, only them, to NULL).
CONSENT_EVENT_PERSONAL = (
    "message_id",
    "detail",
    "identifier_value",
    "words",
    "request_message_id",
    "question_text",
    "question_buttons",
    "question_message_id",
    "answer",
)
_OPERATOR = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


class AlreadyErased(ValueError):
    """The ID names a customer that was forgotten before (by its new key)."""


@dataclass(frozen=True, slots=True)
class ErasurePlan:
    """Whom an erasure covers, read before anything is deleted: the live customer, its family's
    ids and keys (the Rasa conversations to delete)."""

    customer_id: int
    family: tuple[int, ...]
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErasureReport:
    erasure_id: int
    customers: int
    identifiers: int
    conversation_events: int
    message_records: int


def check_operator(raw: str) -> str:
    """Pure: the operator's name as recorded; ValueError for an empty, too long or control-laden one."""
    name = raw.strip()
    if not _OPERATOR.fullmatch(name):
        raise ValueError("the operator is a name of 1 to 64 characters, without control characters")
    return name


def plan(conn: Connection, who: str) -> ErasurePlan | None:
    """None for an ID nobody has; ValueError for one that is none; AlreadyErased for a customer
    forgotten before."""
    customer = resolve(conn, who)
    if customer is None:
        return None
    family = tuple(family_ids(conn, customer.id))
    rows = conn.execute(
        select(customers.c.key, customers.c.erased_at).where(customers.c.id.in_(family))
    ).all()
    if any(row.erased_at is not None for row in rows):
        raise AlreadyErased("this customer was forgotten before")
    return ErasurePlan(customer.id, family, tuple(row.key for row in rows))


def forget(
    conn: Connection, erasure: ErasurePlan, operator: str, at: datetime, conversation_events: int
) -> ErasureReport:
    """Anonymise the family in place and suppress its identifiers, in the caller's transaction
    (all or nothing). `conversation_events`: how many rows of Rasa's tracker store the caller
    deleted for `erasure.keys`, for the record."""
    at = to_db(at)
    operator = check_operator(operator)
    scrub_deleted(conn)
    family = list(erasure.family)
    ic = customer_identities.c
    identities = conn.execute(
        select(ic.kind, ic.value, ic.keyed_hash).where(ic.customer_id.in_(family))
    ).all()
    phones = [row.value for row in identities if row.kind == PHONE]
    wamids = _message_ids(conn, family)
    statuses = message_statuses.c
    status_rows = or_(statuses.recipient_id.in_(phones), statuses.wamid.in_(wamids))
    inbox_rows = inbound_messages.c.customer_key.in_(erasure.keys)
    message_records = _count(conn, message_statuses, status_rows) + _count(conn, inbound_messages, inbox_rows)

    erasure_id = conn.execute(
        insert(erasures).values(
            customer_id=erasure.customer_id,
            erased_at=at,
            operator=operator,
            customers=len(family),
            identifiers=len(identities),
            conversation_events=conversation_events,
            message_records=message_records,
        )
    ).inserted_primary_key[0]
    for member in family:
        new_key = new_customer_key()
        conn.execute(
            update(customers)
            .where(customers.c.id == member)
            .values(
                erased_at=at,
                key=new_key,
                name=None,
                username=None,
                language=None,
                first_seen_at=None,
                last_seen_at=None,
            )
        )
        conn.execute(
            update(broadcast_deliveries)
            .where(broadcast_deliveries.c.customer_id == member)
            .values(customer_key=new_key, wamid=None)
        )
    for row in identities:
        keyed = row.keyed_hash or hash_of(Identifier(row.kind, row.value))
        insert_or_ignore(
            conn,
            suppressions,
            {"keyed_hash": keyed, "kind": row.kind, "suppressed_at": at, "erasure_id": erasure_id},
        )
    conn.execute(delete(customer_identities).where(ic.customer_id.in_(family)))
    conn.execute(
        update(consent_events)
        .where(consent_events.c.customer_id.in_(family))
        .values(dict.fromkeys(CONSENT_EVENT_PERSONAL))
    )
    conn.execute(update(tags).where(tags.c.customer_id.in_(family)).values(message_id=None))
    conn.execute(delete(tags).where(tags.c.customer_id.in_(family), tags.c.name != OPT_OUT))
    conn.execute(
        update(opt_out_requests)
        .where(opt_out_requests.c.customer_id.in_(family))
        .values(message_id=None, resolution_message_id=None)
    )
    conn.execute(
        update(customer_merges).where(customer_merges.c.from_customer_id.in_(family)).values(message_id=None)
    )
    conn.execute(delete(message_statuses).where(status_rows))
    conn.execute(delete(inbound_messages).where(inbox_rows))
    return ErasureReport(erasure_id, len(family), len(identities), conversation_events, message_records)


def _message_ids(conn: Connection, family: list[int]) -> list[str]:
    """Every wamid the store holds for the family: its statuses are found by them too (a message
    sent to a BSUID has no recipient number)."""
    sources = (
        select(tags.c.message_id).where(tags.c.customer_id.in_(family)),
        select(consent_events.c.message_id).where(consent_events.c.customer_id.in_(family)),
        select(consent_events.c.request_message_id).where(consent_events.c.customer_id.in_(family)),
        select(consent_events.c.question_message_id).where(consent_events.c.customer_id.in_(family)),
        select(opt_out_requests.c.message_id).where(opt_out_requests.c.customer_id.in_(family)),
        select(opt_out_requests.c.resolution_message_id).where(opt_out_requests.c.customer_id.in_(family)),
        select(broadcast_deliveries.c.wamid).where(broadcast_deliveries.c.customer_id.in_(family)),
    )
    found: set[str] = set()
    for statement in sources:
        found.update(value for value in conn.execute(statement).scalars() if value)
    return sorted(found)


def _count(conn: Connection, table: Table, condition: ColumnElement) -> int:
    return conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
