"""Tags and the consent history: opt-outs (kept forever), other consent events and other tags.

Nothing here removes a tag: OPT_OUT is permanent by law and by database trigger, and no caller
needs to remove any other tag yet.

Repeated opt-outs: the first one creates the OPT_OUT tag and an `opt_out` event and is the one the
tag keeps (time, source, message), even if a later call carries an earlier time. Each later one
with a new message adds an `opt_out_repeated` event, so the history shows the customer asked
again (and when we had already stopped). A redelivery adds nothing: the consent history holds one
event per customer per message id, or per kind, source and instant when there is no message id
(Meta's user_preferences notices carry none).

Every opt-out also resolves the customer's open opt-out request, if any, in the same transaction
(bot/store/opt_out_requests.py): there is no moment at which the request is gone but no tag is.

Customers are given as a customer key or any identifier (phone number, BSUID, parent BSUID) and
resolved to the live customer; tags and events are written on it and read over its family (see
bot/store/identities.py): a customer whose merged-in half opted out has opted out. Each consent
event records the identifier it was captured under (`under`, or the identifier given).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Row

from bot.consent import OPT_OUT, OPT_OUT_EVENT, OPT_OUT_REPEATED, check_source
from bot.db import insert_or_ignore
from bot.schema import consent_events, customers, tags
from bot.store.customers import ensure_customer
from bot.store.evidence import ConsentEvidence, evidence_columns, evidence_record
from bot.store.identifiers import Identifier, parse_human
from bot.store.identities import family_ids, identities_of, phone_of
from bot.store.opt_out_requests import OPTED_OUT, resolve_open_request
from bot.store.timestamps import from_db, now, to_db

_TAG_NAME = re.compile(r"[A-Z0-9_]{1,64}")
_KIND = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True, slots=True)
class OptOutResult:
    """The OPT_OUT tag as stored; `created` is False when the customer had already opted out."""

    created: bool
    added_at: datetime
    source: str
    message_id: str | None


class OptOutRecord(NamedTuple):
    """One opted-out customer: its key, active phone number (None without one), every identifier
    of its family (`kind:value`, active first), its first opt-out, and that opt-out's evidence
    (`evidence_record`'s shape; empty parts for an opt-out recorded before evidence was kept)."""

    key: str
    wa_id: str | None
    identifiers: tuple[str, ...]
    opted_out_at: datetime
    source: str
    message_id: str | None
    evidence: dict[str, Any]


def normalise_tag_name(raw: str) -> str:
    """'opt-out', 'Opt Out' -> 'OPT_OUT': a typo in case or separator must not lose an opt-out."""
    name = re.sub(r"[\s\-]+", "_", raw.strip()).upper()
    if not _TAG_NAME.fullmatch(name):
        raise ValueError(f"invalid tag {raw!r}: use letters, digits and '_' (at most 64)")
    return name


def record_opt_out(
    conn: Connection,
    wa_id: str,
    source: str,
    message_id: str | None,
    at: datetime,
    name: str | None = None,
    detail: str | None = None,
    under: Identifier | None = None,
    evidence: ConsentEvidence | None = None,
) -> OptOutResult:
    """The customer (`wa_id`: a key or any identifier) asked to stop marketing. Idempotent and safe
    against concurrent calls. `under`: the identifier it was captured under, when `wa_id` is a key;
    `evidence`: what they said, were shown and answered (bot/store/evidence.py)."""
    check_source(source)
    at = to_db(at)
    customer_id, _ = ensure_customer(conn, wa_id, name)
    under = under or _identifier_given(conn, wa_id)
    tag = {"name": OPT_OUT, "added_at": at, "source": source, "message_id": message_id}
    stored = _first_opt_out(conn, customer_id)
    created = stored is None and insert_or_ignore(conn, tags, {"customer_id": customer_id, **tag})
    # Also when the tag was there already: a request opened alongside it must not stay open.
    resolve_open_request(conn, customer_id, OPTED_OUT, message_id, at)
    if created:
        _append_event(conn, customer_id, OPT_OUT_EVENT, source, message_id, detail, at, under, evidence)
        return OptOutResult(True, from_db(at), source, message_id)
    stored = stored or _first_opt_out(conn, customer_id)
    if stored is None:
        # The insert was refused, yet there is no OPT_OUT to point at: never report success (the
        # transaction rolls back and the caller's retry path takes over).
        raise RuntimeError(f"OPT_OUT for customer {customer_id} was neither written nor found")
    first = OptOutResult(False, from_db(stored.added_at), stored.source, stored.message_id)
    # The first opt-out delivered again is no repetition. Without a message id, nothing else would
    # stop it on PostgreSQL: the unique index there includes the kind, and this one's would differ.
    if not _same_event(first, source, message_id, at):
        _append_event(conn, customer_id, OPT_OUT_REPEATED, source, message_id, detail, at, under, evidence)
    return first


def _first_opt_out(conn: Connection, customer_id: int) -> Row | None:
    """The family's first OPT_OUT tag (a merged family may hold one per former customer)."""
    return conn.execute(
        select(tags.c.added_at, tags.c.source, tags.c.message_id)
        .where(tags.c.customer_id.in_(family_ids(conn, customer_id)), tags.c.name == OPT_OUT)
        .order_by(tags.c.added_at, tags.c.id)
        .limit(1)
    ).first()


def _identifier_given(conn: Connection, who: str) -> Identifier | None:
    """The identifier a caller named the customer by; None when it named them by key."""
    if conn.execute(select(customers.c.id).where(customers.c.key == who)).first() is not None:
        return None
    return parse_human(who)


def record_consent_event(
    conn: Connection,
    wa_id: str,
    kind: str,
    source: str,
    message_id: str | None,
    detail: str | None,
    at: datetime,
    under: Identifier | None = None,
    evidence: ConsentEvidence | None = None,
) -> bool:
    """Add a consent event other than an opt-out (e.g. Meta's `resume` or `signup`, or the
    customer's "no" to the confirmation, `kept_marketing`).

    History only: an OPT_OUT tag stays. Returns False for a redelivery (see the module docstring).
    """
    if kind in (OPT_OUT_EVENT, OPT_OUT_REPEATED):
        # The event alone would claim an opt-out that no OPT_OUT tag enforces.
        raise ValueError(f"{kind!r} events come from record_opt_out, which also tags")
    if not _KIND.fullmatch(kind):
        raise ValueError(f"invalid consent event kind {kind!r}: lower-case snake_case, 1-32")
    check_source(source)
    customer_id, _ = ensure_customer(conn, wa_id)
    under = under or _identifier_given(conn, wa_id)
    return _append_event(conn, customer_id, kind, source, message_id, detail, to_db(at), under, evidence)


def add_tag(
    conn: Connection,
    wa_id: str,
    name: str,
    source: str,
    message_id: str | None,
    at: datetime,
) -> bool:
    """Tag a customer (VIP, ...); True if added, False if they already had it (first one kept)."""
    name = normalise_tag_name(name)
    if name == OPT_OUT:
        raise ValueError("an opt-out goes through record_opt_out, which also records the history")
    check_source(source)
    customer_id, _ = ensure_customer(conn, wa_id)
    values = {"name": name, "added_at": to_db(at), "source": source, "message_id": message_id}
    return insert_or_ignore(conn, tags, {"customer_id": customer_id, **values})


def iter_opt_outs(conn: Connection) -> Iterator[OptOutRecord]:
    """Every opted-out customer (merged families once), by first opt-out, oldest first."""
    live_id = func.coalesce(customers.c.merged_into, customers.c.id).label("live_id")
    statement = (
        select(live_id, tags.c.added_at, tags.c.source, tags.c.message_id)
        .join(customers, customers.c.id == tags.c.customer_id)
        .where(tags.c.name == OPT_OUT)
        .order_by(tags.c.added_at, tags.c.id)
    )
    seen: set[int] = set()
    for row in conn.execute(statement).all():
        if row.live_id in seen:
            continue
        seen.add(row.live_id)
        key = conn.execute(select(customers.c.key).where(customers.c.id == row.live_id)).scalar_one()
        identifiers = tuple(f"{i['kind']}:{i['value']}" for i in identities_of(conn, row.live_id))
        yield OptOutRecord(
            key,
            phone_of(conn, row.live_id),
            identifiers,
            from_db(row.added_at),
            row.source,
            row.message_id,
            _first_opt_out_evidence(conn, row.live_id),
        )


def _first_opt_out_evidence(conn: Connection, customer_id: int) -> dict[str, Any]:
    """The evidence of the family's first `opt_out` event (the one the tag was written with)."""
    event = conn.execute(
        select(consent_events)
        .where(
            consent_events.c.customer_id.in_(family_ids(conn, customer_id)),
            consent_events.c.kind == OPT_OUT_EVENT,
        )
        .order_by(consent_events.c.occurred_at, consent_events.c.id)
        .limit(1)
    ).first()
    return evidence_record(event._mapping if event is not None else {"occurred_at": None})


def _append_event(
    conn: Connection,
    customer_id: int,
    kind: str,
    source: str,
    message_id: str | None,
    detail: str | None,
    at: datetime,
    under: Identifier | None,
    evidence: ConsentEvidence | None = None,
) -> bool:
    event = {
        "customer_id": customer_id,
        "kind": kind,
        "source": source,
        "message_id": message_id,
        "detail": detail,
        "occurred_at": at,
        "recorded_at": now(),
        "identifier_kind": under.kind if under else None,
        "identifier_value": under.value if under else None,
        **evidence_columns(evidence),
    }
    return insert_or_ignore(conn, consent_events, event)


def _same_event(first: OptOutResult, source: str, message_id: str | None, at: datetime) -> bool:
    """Pure: is this opt-out the one the tag was written for (same message, or same source and time)?"""
    if message_id is not None:
        return first.message_id == message_id
    return first.message_id is None and first.source == source and first.added_at == from_db(at)
