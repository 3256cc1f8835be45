"""CSV import of customers: a pure parse that finds every problem, then an all-or-nothing write.

Format: a header row, then one customer per row. Columns: `wa_id` or `phone` (one of them; '+',
spaces, dashes and parentheses are ignored), optional `name`, optional `tags` separated by ';' or
'|'. A tag OPT_OUT (any case, '-' or ' ' for '_') records an opt-out with source `import`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from bot.consent import OPT_OUT
from bot.store.customers import ensure_customer
from bot.store.phone_numbers import normalise_wa_id
from bot.store.tags import add_tag, normalise_tag_name, record_opt_out

NUMBER_COLUMNS = ("wa_id", "phone")
COLUMNS = (*NUMBER_COLUMNS, "name", "tags")
_TAG_SEPARATOR = re.compile(r"[;|]")


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    wa_id: str
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
        first_line: dict[str, int] = {}
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
    if len(numbers) != 1:
        problems.append(Problem(1, "the header needs exactly one of the columns wa_id, phone"))
    return problems


def _parse_row(
    line: int,
    columns: Sequence[str],
    fields: Sequence[str],
    first_line: dict[str, int],
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
    raw_number = next(values.get(column, "") for column in NUMBER_COLUMNS if column in columns)
    row_problems = []
    wa_id = ""
    if not raw_number:
        row_problems.append("missing phone number")
    else:
        try:
            wa_id = normalise_wa_id(raw_number)
        except ValueError as error:
            row_problems.append(f"invalid phone number: {error}")
    if wa_id in first_line:
        row_problems.append(f"duplicate phone number (first on line {first_line[wa_id]})")
    elif wa_id:
        first_line[wa_id] = line
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
    return ImportRow(line, wa_id, values.get("name") or None, tuple(tag_names))


def import_customers(
    conn: Connection, rows: Iterable[ImportRow], at: datetime, file_name: str
) -> ImportCounts:
    """Write parsed rows in the caller's transaction: one transaction makes it all or nothing."""
    created = updated = opt_outs = already = 0
    for row in rows:
        _, is_new = ensure_customer(conn, row.wa_id, row.name)
        created += is_new
        updated += not is_new
        for tag in row.tags:
            if tag == OPT_OUT:
                detail = f"{file_name} line {row.line}"
                result = record_opt_out(conn, row.wa_id, "import", None, at, detail=detail)
                opt_outs += result.created
                already += not result.created
            else:
                add_tag(conn, row.wa_id, tag, "import", None, at)
    return ImportCounts(created, updated, opt_outs, already)
