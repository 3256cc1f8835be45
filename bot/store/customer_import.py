"""CSV import of customers: a pure parse that finds every problem, a check against the store
that finds every conflict, then an all-or-nothing write.

Format: a header row, then one customer per row. Identifier columns: `wa_id` or `phone` (at most
one of them; '+', spaces, dashes and parentheses are ignored) and `user_id` (a BSUID or parent
BSUID, exactly as WhatsApp sends it); the header needs at least one, each row at least one value.
Optional `name`, optional `tags` separated by ';' or '|'. A tag OPT_OUT (any case, '-' or ' ' for
'_') records an opt-out with source `import`.

A row with both a number and a BSUID is the operator's claim, not Meta's evidence (see
bot/store/identities.py), so it may complete a customer but never join two:
- nobody has either identifier: one new customer with both (evidence `import`);
- one customer has one of them and nobody the other: the other is attached to that customer;
- both belong to the same customer: nothing to link;
- they belong to two different customers, or one of them is a customer's former identifier
  (a changed number, a rotated BSUID): a conflict, reported with its line, and nothing is imported.

A row with an identifier on the suppression list (a customer who asked to be forgotten, see
bot.consent) is skipped, reported by line: importing it would bring back personal data the
customer had erased, and marketing could never reach them anyway.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.consent import OPT_OUT
from bot.schema import customer_identities, customers
from bot.store.customers import ensure_customer
from bot.store.identifiers import BSUID, PARENT_BSUID, Identifier
from bot.store.identities import ACTIVE, identify, live
from bot.store.marketing_consent import identifier_suppressed
from bot.store.phone_numbers import normalise_wa_id
from bot.store.tags import add_tag, normalise_tag_name, record_opt_out

NUMBER_COLUMNS = ("wa_id", "phone")
USER_ID_COLUMN = "user_id"
COLUMNS = (*NUMBER_COLUMNS, USER_ID_COLUMN, "name", "tags")
_TAG_SEPARATOR = re.compile(r"[;|]")


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    identifiers: tuple[Identifier, ...]  # the phone number first, then the BSUID; at least one
    name: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ImportCounts:
    created: int
    updated: int
    opt_outs: int  # new ones
    already_opted_out: int
    linked: int = 0  # identifiers attached to a customer that had another identifier
    suppressed: tuple[int, ...] = ()  # lines skipped: an identifier on the suppression list


@dataclass(frozen=True, slots=True)
class Holding:
    """Who has an identifier in the store: the live customer's id, and whether it is that
    customer's active identifier (False: a former one, e.g. a number they changed away from)."""

    customer_id: int
    active: bool


def parse_customer_csv(lines: Iterable[str]) -> tuple[list[ImportRow], list[Problem]]:
    """Every row, or every problem with its line number: the caller imports only a clean file."""
    # strict: an unbalanced quote is an error, not a field that swallows the rows after it.
    reader = csv.reader(lines, strict=True)
    rows: list[ImportRow] = []
    problems: list[Problem] = []
    try:
        header = next(reader, None)
        if header is None:
            return [], [Problem(1, "empty file: expected a header row")]
        columns = [column.strip().lower() for column in header]
        problems.extend(_header_problems(columns))
        if problems:
            return [], problems
        first_line: dict[Identifier, int] = {}
        for fields in reader:
            row = _parse_row(reader.line_num, columns, fields, first_line, problems)
            if row is not None:
                rows.append(row)
    except csv.Error as error:
        problems.append(Problem(reader.line_num, f"unreadable CSV: {error}"))
    return ([], problems) if problems else (rows, [])


def _header_problems(columns: Sequence[str]) -> list[Problem]:
    problems = []
    unknown = [column for column in columns if column not in COLUMNS]
    if unknown:
        problems.append(
            Problem(1, f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(COLUMNS)}")
        )
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        problems.append(Problem(1, f"repeated column(s) {', '.join(map(repr, repeated))}"))
    numbers = [column for column in NUMBER_COLUMNS if column in columns]
    if len(numbers) > 1:
        problems.append(Problem(1, "the header may have only one of the columns wa_id, phone"))
    if not numbers and USER_ID_COLUMN not in columns:
        problems.append(Problem(1, "the header needs a wa_id, phone or user_id column"))
    return problems


def parse_user_id(raw: str) -> Identifier:
    """A `user_id` cell: a BSUID or parent BSUID exactly as WhatsApp sends it (the store's rule,
    bot/store/identifiers.py); ValueError for anything else, a phone number included."""
    for kind in (PARENT_BSUID, BSUID):
        try:
            return Identifier(kind, raw)
        except ValueError:
            continue
    raise ValueError("not a BSUID (two capital letters, '.', optional 'ENT.', 1-128 letters or digits)")


def _parse_row(
    line: int,
    columns: Sequence[str],
    fields: Sequence[str],
    first_line: dict[Identifier, int],
    problems: list[Problem],
) -> ImportRow | None:
    """One row, or None after appending its problems; blank rows are skipped silently."""
    if not any(field.strip() for field in fields):
        return None
    if any(field.strip() for field in fields[len(columns) :]):
        problems.append(Problem(line, f"{len(fields)} values for {len(columns)} columns"))
        return None
    if any("\n" in field or "\r" in field for field in fields):
        # No column holds several lines; a quote opened on an earlier line would explain it.
        problems.append(Problem(line, "a value spans several lines (unbalanced quote?)"))
        return None
    values = dict(zip(columns, (field.strip() for field in fields), strict=False))
    raw_number = next((values.get(column, "") for column in NUMBER_COLUMNS if column in columns), "")
    raw_user_id = values.get(USER_ID_COLUMN, "")
    row_problems = []
    identifiers: list[Identifier] = []
    if not raw_number and not raw_user_id:
        row_problems.append("missing phone number" if USER_ID_COLUMN not in columns else "missing identifier")
    if raw_number:
        try:
            identifiers.append(Identifier("phone", normalise_wa_id(raw_number)))
        except ValueError as error:
            row_problems.append(f"invalid phone number: {error}")
    if raw_user_id:
        try:
            identifiers.append(parse_user_id(raw_user_id))
        except ValueError as error:
            row_problems.append(f"invalid user_id: {error}")
    for identifier in identifiers:
        what = "phone number" if identifier.kind == "phone" else "user_id"
        if identifier in first_line:
            row_problems.append(f"duplicate {what} (first on line {first_line[identifier]})")
        else:
            first_line[identifier] = line
    tag_names: list[str] = []
    for raw_tag in _TAG_SEPARATOR.split(values.get("tags", "")):
        if not raw_tag.strip():
            continue
        try:
            tag = normalise_tag_name(raw_tag)
        except ValueError as error:
            row_problems.append(str(error))
            continue
        if tag not in tag_names:
            tag_names.append(tag)
    problems.extend(Problem(line, message) for message in row_problems)
    if row_problems:
        return None
    return ImportRow(line, tuple(identifiers), values.get("name") or None, tuple(tag_names))


def link_problem(line: int, holdings: Sequence[Holding | None]) -> Problem | None:
    """Pure: may this row's identifiers (held as `holdings`, None: nobody) be put on one customer
    on the word of a CSV file? Only if that joins no two customers and revives no former
    identifier; a lone identifier is never a conflict (it names the customer it resolves to)."""
    if len(holdings) < 2:
        return None
    if any(holding is not None and not holding.active for holding in holdings):
        return Problem(
            line,
            "conflict: the number or user_id is a customer's former identifier (changed since);"
            " a CSV file cannot link it: import it on a row of its own",
        )
    owners = {holding.customer_id for holding in holdings if holding is not None}
    if len(owners) > 1:
        return Problem(
            line,
            "conflict: the number and the user_id belong to two different customers;"
            " only WhatsApp's own webhooks can show they are one person",
        )
    return None


def holding(conn: Connection, identifier: Identifier) -> Holding | None:
    """Who has `identifier`: its active holder, else its latest former one, else None."""
    ic = customer_identities.c
    row = conn.execute(
        select(ic.customer_id, ic.status)
        .where(ic.kind == identifier.kind, ic.value == identifier.value)
        # 'active' sorts before 'superseded'; among superseded rows the latest holder wins.
        .order_by(ic.status, ic.superseded_at.desc(), ic.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Holding(live(conn, row.customer_id).id, row.status == ACTIVE)


def conflicts(conn: Connection, rows: Iterable[ImportRow]) -> list[Problem]:
    """Every row the store forbids linking (`link_problem`), before anything is written."""
    found = []
    for row in rows:
        problem = link_problem(row.line, [holding(conn, identifier) for identifier in row.identifiers])
        if problem is not None:
            found.append(problem)
    return found


def import_customers(
    conn: Connection, rows: Iterable[ImportRow], at: datetime, file_name: str
) -> ImportCounts:
    """Write checked rows (`conflicts` found none) in the caller's transaction: one transaction
    makes it all or nothing."""
    created = updated = opt_outs = already = linked = 0
    suppressed: list[int] = []
    for row in rows:
        if any(identifier_suppressed(conn, identifier) for identifier in row.identifiers):
            suppressed.append(row.line)
            continue
        customer_key, is_new, attached = _customer_of(conn, row)
        created += is_new
        updated += not is_new
        linked += attached
        for tag in row.tags:
            if tag == OPT_OUT:
                detail = f"{file_name} line {row.line}"
                result = record_opt_out(
                    conn, customer_key, "import", None, at, detail=detail, under=row.identifiers[0]
                )
                opt_outs += result.created
                already += not result.created
            else:
                add_tag(conn, customer_key, tag, "import", None, at)
    return ImportCounts(created, updated, opt_outs, already, linked, tuple(suppressed))


def _customer_of(conn: Connection, row: ImportRow) -> tuple[str, bool, int]:
    """(customer key, created, identifiers attached to an existing customer) for a checked row."""
    if len(row.identifiers) == 1:
        customer_id, is_new = ensure_customer(conn, row.identifiers[0].value, row.name)
        return _key(conn, customer_id), is_new, 0
    held = [holding(conn, identifier) for identifier in row.identifiers]
    fresh = sum(found is None for found in held)
    # `conflicts` made sure the held ones (if any) are one customer's active identifiers, so
    # `identify` attaches the fresh ones to that customer, or makes one customer of them all.
    customer = identify(conn, row.identifiers, "import", at=None)
    if row.name:
        ensure_customer(conn, customer.key, row.name)
    is_new = fresh == len(held)
    return customer.key, is_new, 0 if is_new else fresh


def _key(conn: Connection, customer_id: int) -> str:
    return conn.execute(select(customers.c.key).where(customers.c.id == customer_id)).scalar_one()
