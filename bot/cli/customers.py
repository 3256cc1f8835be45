"""`python -m bot customers import|show|export-opt-outs`: the customer store from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from bot.cli import customer_records
from bot.cli.opt_out_export import EXPORT_HEADER, KIND_TEXT, opt_out_row
from bot.db import transaction
from bot.masking import mask_identifier
from bot.spreadsheet import SafeCsvWriter
from bot.store.customer_import import (
    COLUMNS,
    Problem,
    conflicts,
    import_customers,
    parse_customer_csv,
)
from bot.store.customers import profile
from bot.store.identifiers import looks_like_new_key, parse_human
from bot.store.identities import identities_of, resolve
from bot.store.tags import iter_opt_outs
from bot.store.timestamps import now

IMPORT_DESCRIPTION = f"""\
Import customers from a UTF-8 CSV file, all or nothing.

The first row is a header. Columns ({", ".join(COLUMNS)}):
  wa_id or phone  WhatsApp number in international form; '+', spaces, dashes and
                  parentheses are ignored ('+1 (650) 555-1234' -> 16505551234)
  user_id         business-scoped user ID (BSUID) or parent BSUID, exactly as
                  WhatsApp sends it ('US.13491208655302741918')
                  (the header needs a number column or user_id; each row a value
                  in at least one of them)
  name            optional; replaces the stored name when given
  tags            optional, separated by ';' or '|'; OPT_OUT records an opt-out
                  (source 'import'), which can never be undone

A row with a number and a user_id gives a new customer both, or attaches the
one nobody has yet to the customer who has the other. A CSV file is not
WhatsApp's evidence: if the two belong to different customers, or one is a
customer's former identifier, the row is a conflict.

The whole file is checked first. Any problem (unknown column, missing or invalid
number or user_id, the same one twice, invalid tag, conflict) is reported with
its line number and nothing is imported (exit code 1).

example:
  wa_id,user_id,name,tags
  +44 7700 900123,,Ada,VIP
  16505551234,US.13491208655302741918,,OPT_OUT
  ,DE.7730551842193,Ana,
"""


EXPORT_DESCRIPTION = f"""\
Write every opted-out customer, oldest opt-out first, as CSV with the header

  {",".join(EXPORT_HEADER)}

wa_id, user_id, parent_user_id: the customer's active phone number, BSUID and
parent BSUID (empty when it has none); customer_key: its key; opted_out_at
(ISO-8601 UTC), source, message_id: its first opt-out; identifiers: every
active identifier as kind:value, separated by spaces; former_identifiers: the
ones it had before (a changed number, a rotated BSUID), which may belong to
someone else by now. Then the first opt-out's evidence (empty when it was
recorded before evidence was kept, or has been erased): language, request_words
(the customer's exact words, or the button, template or link label used),
requested_at, request_message_id, question_response and question_version (the
question shown: its response name and a hash of its rendered text),
question_text, question_buttons (titles separated by ' | ') and answer;
opted_out_at and message_id are the confirmation's.

Cells a spreadsheet would run as a formula (=, +, -, @, tab, CR first) get a
leading ': a customer's words are data, never a formula.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "customers",
        help="customer profiles, tags and opt-outs",
        description="Customer profiles, tags and opt-outs in DATABASE_URL.",
    )
    commands = parser.add_subparsers(dest="customers_command", required=True, metavar="ACTION")

    import_ = commands.add_parser(
        "import",
        help="import customers from a CSV file (all or nothing)",
        description=IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import_.add_argument("file", type=Path, metavar="FILE.csv")
    import_.set_defaults(handler=_import)

    show = commands.add_parser(
        "show",
        help="print a customer's profile, identities, tags and consent history as JSON",
        description="Print a customer's profile, identities (phone numbers, BSUIDs, parent BSUIDs),"
        " merges, tags and consent history as JSON (times in ISO-8601 UTC). Exit code 1 if the store"
        " does not know the ID or it is none of these.",
    )
    show.add_argument(
        "id",
        metavar="ID",
        help="phone number (16505551234, +1 650 555 1234), BSUID (US.13491208655302741918),"
        " parent BSUID (US.ENT.11815799212886844830) or customer key (c_...)",
    )
    show.set_defaults(handler=_show)

    export = commands.add_parser(
        "export-opt-outs",
        help="write every opt-out as CSV",
        description=EXPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write to FILE (replaced only once complete, readable by its owner only) instead of stdout",
    )
    export.set_defaults(handler=_export_opt_outs)
    customer_records.register(commands)


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        # utf-8-sig: spreadsheet programs often start a CSV with a byte order mark.
        with path.open(newline="", encoding="utf-8-sig") as lines:
            rows, problems = parse_customer_csv(lines)
    except OSError as error:
        return _fail(f"cannot read {path}: {error.strerror}")
    except UnicodeDecodeError:
        return _fail(f"{path} is not UTF-8 text; nothing imported")
    if problems:
        return _report(path, problems)
    with transaction() as conn:
        # Checked in the transaction that writes, just before writing: the store as it is now.
        problems = conflicts(conn, rows)
        if not problems:
            counts = import_customers(conn, rows, now(), path.name)
    if problems:
        return _report(path, problems)
    print(
        f"imported {len(rows) - len(counts.suppressed)} customers from {path}: {counts.created} created,"
        f" {counts.updated} updated, {counts.opt_outs} opt-outs recorded"
        f" ({counts.already_opted_out} already opted out), {counts.linked} identifiers linked"
    )
    if counts.suppressed:
        lines = ", ".join(map(str, counts.suppressed))
        print(
            f"{path}: skipped {len(counts.suppressed)} row(s) (line {lines}): an identifier of a customer"
            " who asked to be forgotten (suppression list); they are never imported or messaged",
            file=sys.stderr,
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    raw = args.id.strip()
    try:
        with transaction() as conn:
            found = profile(conn, raw)
    except ValueError:
        if looks_like_new_key(raw):
            return _fail(f"no customer with key {raw}")
        return _fail(
            "invalid ID: expected a phone number in international form (e.g. 16505551234), a BSUID"
            " (e.g. US.13491208655302741918), a parent BSUID (US.ENT.…) or a customer key (c_…)"
        )
    if found is None:
        # Identifiers are personal data: echoed masked, as in the logs.
        identifier = parse_human(raw)
        return _fail(f"no customer with {KIND_TEXT[identifier.kind]} {mask_identifier(identifier.value)}")
    print(json.dumps(found, indent=2, ensure_ascii=False))
    return 0


def _export_opt_outs(args: argparse.Namespace) -> int:
    if args.out is None:
        count = _write_opt_outs(sys.stdout)
    else:
        # Written beside the target and renamed when complete: a half-written suppression list
        # must never look like a whole one. mkstemp's 0600 suits a file of phone numbers.
        fd, temporary = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.")
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
                count = _write_opt_outs(out)
            os.replace(temporary, args.out)
        finally:
            Path(temporary).unlink(missing_ok=True)
    print(f"exported {count} opt-outs", file=sys.stderr)
    return 0


def _write_opt_outs(out: TextIO) -> int:
    writer = SafeCsvWriter(out)
    writer.writerow(EXPORT_HEADER)
    count = 0
    with transaction() as conn:
        for record in iter_opt_outs(conn):
            customer = resolve(conn, record.key)
            if customer is None:  # iter_opt_outs yields live customers' keys, in this transaction
                raise RuntimeError(f"opted-out customer {record.key} vanished during the export")
            writer.writerow(opt_out_row(record, identities_of(conn, customer.id)))
            count += 1
    return count


def _report(path: Path, problems: list[Problem]) -> int:
    for problem in problems:
        print(f"{path}: line {problem.line}: {problem.message}", file=sys.stderr)
    return _fail(f"{path}: {len(problems)} problem(s); nothing imported")


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
