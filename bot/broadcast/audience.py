"""Who a broadcast reaches: everyone, a tag or a CSV file of numbers and/or BSUIDs, minus those marketing may not
reach (opted out, or asked to stop and not confirmed: `bot.consent`).

Nothing here loads customers into Python. Counting is one SELECT and materialising is one
`INSERT INTO broadcast_deliveries ... SELECT ... ON CONFLICT DO NOTHING` over the customer store,
with opted-out customers left out by `bot.consent.marketing_allowed_clause`, the same rule every
other sender asks. A CSV file is streamed into a temporary table in batches first, and only
numbers the customer store knows are ever selected: the store is where consent is recorded.

An audience is made of live customers (merged-away ones are part of the customer they were merged
into, bot/store/identities.py), and the consent rule reads each one's whole family: a number
linked to a BSUID that opted out is left out. A number in a file selects the customer who holds
it now (its active identity), whatever identifier the delivery is then sent to.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement, FromClause

from bot.broadcast.states import INITIAL
from bot.consent import marketing_allowed_clause
from bot.db import insert_ignoring_duplicates
from bot.schema import broadcast_deliveries, customer_identities, customers, tags
from bot.store.customer_import import USER_ID_COLUMN, Problem, parse_user_id
from bot.store.identities import ACTIVE
from bot.store.phone_numbers import normalise_wa_id
from bot.store.timestamps import to_db

NUMBER_COLUMNS = ("wa_id", "phone")
BATCH_SIZE = 10_000

# Lives only as long as the database connection and is seen by no other one. The connection pool
# reuses connections, so the table is emptied before each use rather than assumed new.
scratch_numbers = Table(
    "broadcast_audience_numbers",
    MetaData(),
    Column("identifier", String(160), primary_key=True),  # a phone number's digits, or a BSUID
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True, slots=True)
class Audience:
    """Everyone in the customer store, those with a tag, or those whose number is in a file."""

    tag: str | None = None
    file: Path | None = None
    file_sha256: str | None = None

    @property
    def description(self) -> str:
        if self.file is not None:
            return f"customers in {self.file.name} (sha256 {self.file_sha256})"
        if self.tag is not None:
            return f"customers tagged {self.tag}"
        return "all customers"


@dataclass(frozen=True, slots=True)
class AudienceNumber:
    """One identifier of a row: a phone number's digits, or a BSUID / parent BSUID as sent."""

    line: int
    identifier: str


@dataclass(frozen=True, slots=True)
class Selection:
    audience: int  # customers in the audience
    allowed: int  # of them, those marketing may reach

    @property
    def opted_out(self) -> int:
        return self.audience - self.allowed


@dataclass
class FileLoad:
    numbers: int = 0  # distinct numbers in the file
    problems: list[Problem] = field(default_factory=list)  # the first few
    problem_count: int = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_audience_csv(lines: Iterable[str]) -> Iterator[AudienceNumber | Problem]:
    """Pure and lazy: the identifiers (or a problem) of each row of a CSV with a `wa_id` or
    `phone` column, a `user_id` column (BSUID or parent BSUID, for customers known without a
    number), or both. A row with both selects whoever holds either: a file is an audience, not
    evidence that the two belong together (nothing is linked).

    Other columns (a CRM export's names, e-mails...) are ignored; blank rows are skipped.
    """
    # strict: an unbalanced quote is an error, not a field that swallows the rows after it.
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            yield Problem(1, "empty file: expected a header row with a wa_id, phone or user_id column")
            return
        columns = [column.strip().lower() for column in header]
        present = [column for column in columns if column in NUMBER_COLUMNS]
        if len(present) > 1 or not (present or USER_ID_COLUMN in columns):
            yield Problem(1, "the header needs one of the columns wa_id, phone, and/or a user_id column")
            return
        number_at = columns.index(present[0]) if present else None
        user_id_at = columns.index(USER_ID_COLUMN) if USER_ID_COLUMN in columns else None
        for fields in reader:
            if not any(value.strip() for value in fields):
                continue
            number, user_id = _cell(fields, number_at), _cell(fields, user_id_at)
            if not number and not user_id:
                yield Problem(reader.line_num, "missing phone number or user_id")
                continue
            if number:
                try:
                    yield AudienceNumber(reader.line_num, normalise_wa_id(number))
                except ValueError as error:
                    yield Problem(reader.line_num, f"invalid phone number: {error}")
            if user_id:
                try:
                    yield AudienceNumber(reader.line_num, parse_user_id(user_id).value)
                except ValueError as error:
                    yield Problem(reader.line_num, f"invalid user_id: {error}")
    except csv.Error as error:
        yield Problem(reader.line_num, f"unreadable CSV: {error}")


def _cell(fields: list[str], index: int | None) -> str:
    return fields[index].strip() if index is not None and index < len(fields) else ""


def load_numbers(
    conn: Connection,
    items: Iterable[AudienceNumber | Problem],
    batch_size: int = BATCH_SIZE,
    problems_kept: int = 20,
) -> FileLoad:
    """Stream parsed rows into the scratch table, `batch_size` at a time; duplicates count once."""
    scratch_numbers.create(conn, checkfirst=True)
    conn.execute(delete(scratch_numbers))
    insert = insert_ignoring_duplicates(conn, scratch_numbers)
    load = FileLoad()
    batch: list[dict[str, str]] = []
    for item in items:
        if isinstance(item, Problem):
            load.problem_count += 1
            if len(load.problems) < problems_kept:
                load.problems.append(item)
            continue
        batch.append({"identifier": item.identifier})
        if len(batch) >= batch_size:
            conn.execute(insert, batch)
            batch = []
    if batch:
        conn.execute(insert, batch)
    load.numbers = conn.execute(select(func.count()).select_from(scratch_numbers)).scalar_one()
    return load


def unknown_identifiers(conn: Connection) -> int:
    """How many identifiers of the loaded file nobody in the customer store holds (actively)."""
    ci = customer_identities.c
    held = select(ci.value).where(ci.status == ACTIVE, ci.value == scratch_numbers.c.identifier).exists()
    return conn.execute(select(func.count()).select_from(scratch_numbers).where(~held)).scalar_one()


def drop_numbers(conn: Connection) -> None:
    scratch_numbers.drop(conn, checkfirst=True)


def count(conn: Connection, audience: Audience) -> Selection:
    allowed = marketing_allowed_clause(customers)
    statement = select(func.count(), func.coalesce(func.sum(case((allowed, 1), else_=0)), 0)).select_from(
        _source(audience)
    )
    total, allowed_count = conn.execute(statement.where(_members(audience))).one()
    return Selection(audience=total, allowed=allowed_count)


def materialise(conn: Connection, broadcast_id: str, audience: Audience, at: datetime) -> int:
    """One statement: a pending delivery for each customer of the audience that marketing may
    reach. Returns how many were added; a second run for the same broadcast adds none."""
    rows = (
        select(
            literal(broadcast_id, String),
            customers.c.id,
            customers.c.key,
            literal(INITIAL.value, String),
            literal(to_db(at), DateTime(timezone=True)),
        )
        .select_from(_source(audience))
        # The WHERE also keeps SQLite from reading ON CONFLICT as part of a join.
        .where(_members(audience), marketing_allowed_clause(customers))
    )
    columns = ["broadcast_id", "customer_id", "customer_key", "state", "updated_at"]
    statement = insert_ignoring_duplicates(conn, broadcast_deliveries).from_select(columns, rows)
    return conn.execute(statement).rowcount


def _source(audience: Audience) -> FromClause:
    source: FromClause = customers
    if audience.tag is not None:
        # An alias, so that the opt-out subquery's `tags` is not correlated to this join.
        segment = tags.alias("segment")
        source = source.join(
            segment, and_(segment.c.customer_id == customers.c.id, segment.c.name == audience.tag)
        )
    return source


def _members(audience: Audience) -> ColumnElement:
    """Live customers only; with a file, those holding one of its identifiers (actively)."""
    live = customers.c.merged_into.is_(None)
    if audience.file is None:
        return live
    holder = customers.alias("holder")
    ci = customer_identities.c
    holders = (
        select(func.coalesce(holder.c.merged_into, holder.c.id))
        .select_from(customer_identities.join(holder, holder.c.id == ci.customer_id))
        .join(scratch_numbers, scratch_numbers.c.identifier == ci.value)
        .where(ci.status == ACTIVE)
    )
    return and_(live, customers.c.id.in_(holders))
