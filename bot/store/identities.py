"""Who is this? Customers and their WhatsApp identifiers: resolution, linking, merging, rotation.

A customer is `customers.key` (Rasa's sender id; see bot/schema.py) plus any number of identities
(`customer_identities`): phone numbers, BSUIDs, parent BSUIDs (bot/store/identifiers.py).

Resolution (`resolve`) accepts a customer key, a phone number in any human formatting, a BSUID or a
parent BSUID and returns the *live* customer: a customer merged into another resolves to that
other one (`merged_into`, always one hop). Active identities win over superseded ones.

Linking (`identify`) is the only way inbound events create customers or connect identifiers, and
it takes only Meta's word: every identifier of ONE webhook event (an inbound message with `from`
and `from_user_id`, a status with `recipient_id` and `recipient_user_id`, a phone-number-request
reply) belongs to one user. Identifiers found on different customers make them one (`merge`).
Never call it with a number a customer typed or a shared vCard: that is no evidence.

Merging moves no rows. The younger customer (higher id) gets `merged_into` = the older one, whose
key Rasa has known longest; tags, consent events, opt-out requests and identities stay where they
were recorded (all append-only or guarded), and `bot.consent` reads a customer's whole *family*
(itself + the customers merged into it). So an opt-out recorded under either half applies to the
merged customer at once, and nothing consent-related is ever updated. The merged-away customer's
Rasa conversation is not copied: its next message lands in the survivor's conversation, and an
open confirmation form in the merged-away conversation is abandoned there (its open opt-out
request still suppresses marketing for the whole family until the customer answers a new one).

Recycled numbers: WhatsApp reassigns phone numbers. A superseded phone number never brings its
old owner back: arriving with a BSUID nobody has, it starts a new customer that inherits no
consent either way (neither opt-in nor opt-out belongs to the number's new owner).

Rotation (`rotate`): Meta's `user_changed_number` / `user_changed_user_id` system messages and the
legacy `user_id_update` say identifiers changed. Old ones are superseded (kept: old consent
evidence points at them), new ones attached to the same customer. Idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from bot.db import insert_or_ignore
from bot.schema import customer_identities, customer_merges, customers
from bot.store.identifiers import (
    BSUID,
    PARENT_BSUID,
    PHONE,
    Identifier,
    new_customer_key,
    parse_human,
)
from bot.store.keyed_hash import hash_of
from bot.store.timestamps import now, to_db

ACTIVE = "active"
SUPERSEDED = "superseded"

# How we learnt that an identifier belongs to a customer.
EVIDENCE = frozenset(
    {
        "webhook_pair",  # one inbound message / user_preferences event carried them together
        "status_pair",  # a status of our message: recipient_id + recipient_user_id
        "system_rotation",  # user_changed_number / user_changed_user_id / user_id_update
        "contact_request",  # the phone-number-request button's reply (origin contact_request)
        "first_contact",  # the only identifier of an event from a customer new to us
        "import",  # `python -m bot customers import`, or a store call given a bare identifier
        "migrated",  # migration 0005: the customer's wa_id before identities existed
    }
)

_ic = customer_identities.c
_c = customers.c

# The statements every inbound message runs (claim, sighting, reply address), built once with
# bound parameters: SQLAlchemy then reuses their cache key and compiled form, where a statement
# built per call cost ~7x as much CPU (docs/benchmarks.md, issue 11's WhatsApp-vs-REST gap).
_CUSTOMER = select(_c.id, _c.key, _c.merged_into).where(_c.id == bindparam("customer_id"))
_FAMILY = (
    select(_c.id)
    .where(or_(_c.id == bindparam("customer_id"), _c.merged_into == bindparam("customer_id")))
    .order_by(_c.id)
)
_IDENTITY_ROW = (  # the identifier's active row first ('active' < 'superseded'), then the latest
    select(_ic.customer_id, _ic.status)
    .where(_ic.kind == bindparam("kind"), _ic.value == bindparam("value"))
    .order_by(_ic.status, _ic.superseded_at.desc(), _ic.id.desc())
    .limit(1)
)
_TOUCH = (  # parameters named unlike the columns: an UPDATE would SET a column-named one
    update(customer_identities)
    .where(
        _ic.kind == bindparam("touched_kind"),
        _ic.value == bindparam("touched_value"),
        _ic.status == ACTIVE,
        _ic.last_seen_at < bindparam("touched_at"),
    )
    .values(last_seen_at=bindparam("touched_at"))
)


@dataclass(frozen=True, slots=True)
class Customer:
    """A live customer (never a merged-away one): its row id and its key, Rasa's sender id."""

    id: int
    key: str


@dataclass(frozen=True, slots=True)
class Address:
    """Where the Cloud API sends to: `field` is `to` (a phone number) or `recipient` (a BSUID)."""

    field: str
    value: str


def check_evidence(evidence: str) -> None:
    if evidence not in EVIDENCE:
        raise ValueError(f"unknown evidence {evidence!r}; one of {', '.join(sorted(EVIDENCE))}")


# --- reading -------------------------------------------------------------------------------


def live(conn: Connection, customer_id: int) -> Customer:
    """The customer itself, or the one it was merged into."""
    row = conn.execute(_CUSTOMER, {"customer_id": customer_id}).one()
    if row.merged_into is None:
        return Customer(row.id, row.key)
    survivor = conn.execute(_CUSTOMER, {"customer_id": row.merged_into}).one()
    return Customer(survivor.id, survivor.key)


def resolve(conn: Connection, raw: str) -> Customer | None:
    """The live customer behind a customer key, phone number (any formatting), BSUID or parent
    BSUID; None when nobody has it. ValueError when `raw` is none of these."""
    by_key = conn.execute(select(_c.id).where(_c.key == raw.strip())).scalar_one_or_none()
    if by_key is not None:
        return live(conn, by_key)
    return resolve_identifier(conn, parse_human(raw))


def resolve_identifier(conn: Connection, identifier: Identifier) -> Customer | None:
    """The live customer holding this identifier: its active holder, else its latest former one."""
    row = _row(conn, identifier)
    return None if row is None else live(conn, row.customer_id)


def conversation_id(conn: Connection, raw: str) -> str | None:
    """The one helper for Rasa `trigger_intent` callers (playbooks, the broadcast runner): any
    identifier of a customer -> the Rasa conversation (sender id) to address, or None if unknown.

    `POST /conversations/<conversation_id>/trigger_intent?output_channel=whatsapp`; the WhatsApp
    output channel then picks the address (`address_of`)."""
    customer = resolve(conn, raw)
    return None if customer is None else customer.key


def family_ids(conn: Connection, customer_id: int) -> list[int]:
    """The live customer and every customer merged into it."""
    return list(conn.execute(_FAMILY, {"customer_id": customer_id}).scalars())


def identities_of(conn: Connection, customer_id: int) -> list[dict[str, Any]]:
    """Every identity of the customer's family, active ones first, each with the customer it was
    recorded under (`customer_id`) and its evidence and times (datetimes as stored)."""
    family = family_ids(conn, customer_id)
    rows = conn.execute(
        select(customer_identities)
        .where(_ic.customer_id.in_(family))
        .order_by(_ic.status, _ic.kind, _ic.first_seen_at, _ic.id)
    ).all()
    return [dict(row._mapping) for row in rows]


_ADDRESS_FIELD = {PHONE: "to", BSUID: "recipient", PARENT_BSUID: "recipient"}
_ADDRESS = (  # one query: the family's active identities, best kind first, newest first
    select(_ic.kind, _ic.value)
    .where(
        _ic.customer_id.in_(_FAMILY.with_only_columns(_c.id).order_by(None)),
        _ic.kind.in_(tuple(_ADDRESS_FIELD)),
        _ic.status == ACTIVE,
    )
    .order_by(case({PHONE: 0, BSUID: 1}, value=_ic.kind, else_=2), _ic.last_seen_at.desc(), _ic.id.desc())
    .limit(1)
)


def address_of(conn: Connection, customer_id: int) -> Address | None:
    """Where to send: the newest active phone number (`to`), else the newest active BSUID, else the
    parent BSUID (`recipient`), over the customer's merged family; None when it has no active
    identity."""
    row = conn.execute(_ADDRESS, {"customer_id": customer_id}).first()
    return None if row is None else Address(_ADDRESS_FIELD[row.kind], row.value)


def live_ids(conn: Connection, customer_ids: Iterable[int]) -> dict[int, int]:
    """Each customer's live customer (itself, or the one it was merged into), in one query."""
    rows = conn.execute(select(_c.id, _c.merged_into).where(_c.id.in_(list(customer_ids))))
    return {row.id: row.merged_into or row.id for row in rows}


def addresses_of(conn: Connection, live_customer_ids: Iterable[int]) -> dict[int, Address]:
    """`address_of` for many live customers in two queries (broadcast batches); the same choice:
    phone number, else BSUID, else parent BSUID, the newest active one of the family."""
    wanted = list(live_customer_ids)
    members = conn.execute(
        select(_c.id, _c.merged_into).where(or_(_c.id.in_(wanted), _c.merged_into.in_(wanted)))
    )
    family_of = {row.id: row.merged_into or row.id for row in members}
    rows = conn.execute(
        select(_ic.customer_id, _ic.kind, _ic.value)
        .where(_ic.customer_id.in_(list(family_of)), _ic.status == ACTIVE)
        .order_by(_ic.last_seen_at.desc(), _ic.id.desc())
    )
    preference = {PHONE: 0, BSUID: 1, PARENT_BSUID: 2}
    field = {PHONE: "to", BSUID: "recipient", PARENT_BSUID: "recipient"}
    best: dict[int, tuple[int, Address]] = {}
    for row in rows:  # newest first: the first of each kind wins
        owner = family_of[row.customer_id]
        rank = preference[row.kind]
        if owner not in best or rank < best[owner][0]:
            best[owner] = (rank, Address(field[row.kind], row.value))
    return {owner: address for owner, (_, address) in best.items()}


def phone_of(conn: Connection, customer_id: int) -> str | None:
    address = address_of(conn, customer_id)
    return address.value if address is not None and address.field == "to" else None


def merges_of(conn: Connection, customer_id: int) -> list[dict[str, Any]]:
    """The merges into this customer's family, oldest first (`from_key`, `into_key`, evidence...)."""
    family = family_ids(conn, customer_id)
    source, target = customers.alias("source"), customers.alias("target")
    rows = conn.execute(
        select(
            source.c.key.label("from_key"),
            target.c.key.label("into_key"),
            customer_merges.c.evidence,
            customer_merges.c.message_id,
            customer_merges.c.merged_at,
        )
        .join(source, source.c.id == customer_merges.c.from_customer_id)
        .join(target, target.c.id == customer_merges.c.into_customer_id)
        .where(customer_merges.c.from_customer_id.in_(family))
        .order_by(customer_merges.c.merged_at, customer_merges.c.id)
    ).all()
    return [dict(row._mapping) for row in rows]


# --- writing -------------------------------------------------------------------------------


def create_customer(conn: Connection, name: str | None = None, username: str | None = None) -> Customer:
    """A new customer with a fresh opaque key and no identities yet."""
    key = new_customer_key()
    customer_id = conn.execute(
        insert(customers).values(key=key, name=name or None, username=username or None)
    ).inserted_primary_key[0]
    return Customer(customer_id, key)


def ensure(conn: Connection, raw: str, evidence: str = "import") -> tuple[Customer, bool]:
    """The live customer behind `raw` (a key or any identifier), creating one for an identifier
    nobody has. Returns (customer, created). ValueError for an unknown key-like string or garbage.

    For store callers given one identifier (an import, a test, the CLI): no linking happens here.
    """
    found = resolve(conn, raw)
    if found is not None:
        return found, False
    customer = identify(conn, [parse_human(raw)], evidence, at=None)
    return customer, True


def identify(
    conn: Connection,
    identifiers: Sequence[Identifier],
    evidence: str,
    at: datetime | None,
    message_id: str | None = None,
) -> Customer:
    """The live customer the identifiers of ONE Meta event belong to: linked, merged or created.

    Idempotent: the same event again changes nothing but `last_seen_at` of the identities.
    `at` is when the event happened (None: now-less callers such as an import use the clock).
    """
    if not identifiers:
        raise ValueError("identify needs at least one identifier")
    check_evidence(evidence)
    at = to_db(at) if at is not None else now()
    holders: list[int] = []  # live customers the event's identifiers point at
    former_phone_owners: set[int] = set()  # superseded phones: whose number it used to be
    fresh: list[Identifier] = []  # identifiers to attach as active rows
    for identifier in dict.fromkeys(identifiers):
        row = _row(conn, identifier)
        if row is not None and row.status == ACTIVE:
            holders.append(live(conn, row.customer_id).id)
            continue
        if row is not None and identifier.kind != PHONE:
            # A BSUID is never reissued: a late event from before a rotation is still theirs.
            holders.append(live(conn, row.customer_id).id)
            continue
        if row is not None:
            former_phone_owners.add(live(conn, row.customer_id).id)
        fresh.append(identifier)
    if not holders:
        # Nobody holds any of them actively: a new customer (also a recycled number's new owner).
        survivor = create_customer(conn)
        if not any([_attach(conn, survivor.id, identifier, evidence, at) for identifier in fresh]):
            # A concurrent event created their customer first (the unique index kept our rows
            # out): theirs it is. The empty newcomer becomes a tombstone (customers are never
            # deleted), merged into the first holder found now.
            winner = identify(conn, identifiers, evidence, at, message_id)
            return merge(conn, winner, survivor, evidence, message_id, at)
        return survivor
    survivor = _merge_all(conn, sorted(set(holders)), evidence, message_id, at)
    for identifier in fresh:
        if identifier.kind == PHONE and survivor.id in former_phone_owners:
            continue  # a late event naming their own old number: never re-activate it
        _attach(conn, survivor.id, identifier, evidence, at)
    _touch_identities(conn, identifiers, at)
    return survivor


def rotate(
    conn: Connection,
    old: Sequence[Identifier],
    new: Sequence[Identifier],
    at: datetime,
    message_id: str | None = None,
) -> Customer:
    """Meta says the user's `old` identifiers were replaced by `new` ones (a number change
    regenerates the BSUID too). Supersede the old, attach the new, to one customer. Idempotent."""
    if not old and not new:
        raise ValueError("a rotation needs an identifier")
    at = to_db(at)
    holders = set()
    for identifier in (*old, *new):
        row = _row(conn, identifier)
        if row is not None:
            holders.add(live(conn, row.customer_id).id)
    if holders:
        survivor = _merge_all(conn, sorted(holders), "system_rotation", message_id, at)
    else:
        survivor = create_customer(conn)
    family = family_ids(conn, survivor.id)
    for identifier in old:
        if identifier in new:
            continue
        if _row(conn, identifier) is None:
            # Learnt only now: recorded as already superseded, so late events still resolve here.
            _insert_identity(conn, survivor.id, identifier, "system_rotation", at, SUPERSEDED)
        conn.execute(
            update(customer_identities)
            .where(
                _ic.kind == identifier.kind,
                _ic.value == identifier.value,
                _ic.status == ACTIVE,
                _ic.customer_id.in_(family),
            )
            .values(status=SUPERSEDED, superseded_at=at)
        )
    for identifier in new:
        _attach(conn, survivor.id, identifier, "system_rotation", at)
    return survivor


def merge(
    conn: Connection, into: Customer, other: Customer, evidence: str, message_id: str | None, at: datetime
) -> Customer:
    """Make `other` (and everything merged into it) part of `into`'s family; see the module doc.
    Callers normally let `identify` decide; the older customer should survive."""
    check_evidence(evidence)
    if into.id == other.id:
        return into
    conn.execute(update(customers).where(_c.merged_into == other.id).values(merged_into=into.id))
    conn.execute(update(customers).where(_c.id == other.id).values(merged_into=into.id))
    insert_or_ignore(
        conn,
        customer_merges,
        {
            "from_customer_id": other.id,
            "into_customer_id": into.id,
            "evidence": evidence,
            "message_id": message_id,
            "merged_at": to_db(at),
        },
    )
    _combine_display_data(conn, into.id, other.id)
    return into


def _merge_all(
    conn: Connection, customer_ids: list[int], evidence: str, message_id: str | None, at: datetime
) -> Customer:
    """Pure in intent: the oldest (lowest id) survives, so the key Rasa knows longest stays."""
    survivor = live(conn, customer_ids[0])
    for other_id in customer_ids[1:]:
        merge(conn, survivor, live(conn, other_id), evidence, message_id, at)
    return survivor


def _row(conn: Connection, identifier: Identifier) -> Any:
    """The identifier's active row, else its latest superseded one, else None."""
    return conn.execute(_IDENTITY_ROW, {"kind": identifier.kind, "value": identifier.value}).first()


def _attach(conn: Connection, customer_id: int, identifier: Identifier, evidence: str, at: datetime) -> bool:
    """An active identity for the customer, unless it has one already (or somebody else does:
    the partial unique index keeps one active holder, and `identify` merged them before).
    True when it was added."""
    return _insert_identity(conn, customer_id, identifier, evidence, at, ACTIVE)


def _insert_identity(
    conn: Connection, customer_id: int, identifier: Identifier, evidence: str, at: datetime, status: str
) -> bool:
    return insert_or_ignore(
        conn,
        customer_identities,
        {
            "customer_id": customer_id,
            "kind": identifier.kind,
            "value": identifier.value,
            "status": status,
            "evidence": evidence,
            "first_seen_at": at,
            "last_seen_at": at,
            "superseded_at": at if status == SUPERSEDED else None,
            # Recorded with the identity, so that the suppression list can be matched in SQL.
            "keyed_hash": hash_of(identifier),
        },
    )


def _touch_identities(conn: Connection, identifiers: Iterable[Identifier], at: datetime) -> None:
    rows = [
        {"touched_kind": identifier.kind, "touched_value": identifier.value, "touched_at": at}
        for identifier in identifiers
    ]
    if rows:
        conn.execute(_TOUCH, rows)


def _combine_display_data(conn: Connection, into_id: int, other_id: int) -> None:
    """The survivor keeps its own name and username, takes the other's where it has none, and
    its seen times cover both."""
    other = conn.execute(select(customers).where(_c.id == other_id)).one()
    changes: dict[str, Any] = {
        "name": func.coalesce(_c.name, other.name),
        "username": func.coalesce(_c.username, other.username),
    }
    if other.first_seen_at is not None:
        changes["first_seen_at"] = func.coalesce(
            func.min(_c.first_seen_at, other.first_seen_at)
            if conn.dialect.name == "sqlite"
            else func.least(_c.first_seen_at, other.first_seen_at),
            other.first_seen_at,
        )
    if other.last_seen_at is not None:
        changes["last_seen_at"] = func.coalesce(
            func.max(_c.last_seen_at, other.last_seen_at)
            if conn.dialect.name == "sqlite"
            else func.greatest(_c.last_seen_at, other.last_seen_at),
            other.last_seen_at,
        )
    conn.execute(update(customers).where(and_(_c.id == into_id)).values(changes))
