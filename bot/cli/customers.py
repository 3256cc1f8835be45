"""`python -m bot customers import|show|export-opt-outs`: the customer store from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from bot.db import transaction
from bot.masking import mask_identifier
from bot.spreadsheet import SafeCsvWriter
from bot.store.customer_import import COLUMNS, import_customers, parse_customer_csv
from bot.store.customers import profile
from bot.store.phone_numbers import normalise_wa_id
from bot.store.tags import iter_opt_outs
from bot.store.timestamps import now

IMPORT_DESCRIPTION = f"""\
Import customers from a UTF-8 CSV file, all or nothing.

The first row is a header. Columns ({", ".join(COLUMNS)}):
  wa_id or phone  WhatsApp number in international form; '+', spaces, dashes and
                  parentheses are ignored ('+1 (650) 555-1234' -> 16505551234)
  name            optional; replaces the stored name when given
  tags            optional, separated by ';' or '|'; OPT_OUT records an opt-out
                  (source 'import'), which can never be undone

The whole file is checked first. Any problem (unknown column, missing or invalid
number, the same number twice, invalid tag) is reported with its line number and
nothing is imported (exit code 1).

example:
  wa_id,name,tags
  +44 7700 900123,Ada,VIP
  16505551234,,OPT_OUT
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
        help="print a customer's profile, tags and consent history as JSON",
        description="Print a customer's profile, tags and consent history as JSON (times in"
        " ISO-8601 UTC). Exit code 1 if the store does not know the number.",
    )
    show.add_argument("wa_id", metavar="WA_ID", help="WhatsApp number, e.g. 16505551234")
    show.set_defaults(handler=_show)

    export = commands.add_parser(
        "export-opt-outs",
        help="write every opt-out as CSV",
        description="Write every opt-out, oldest first, as CSV with the header"
        " wa_id,opted_out_at,source,message_id (opted_out_at in ISO-8601 UTC).",
    )
    export.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write to FILE (replaced only once complete, readable by its owner only) instead of stdout",
    )
    export.set_defaults(handler=_export_opt_outs)


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
        for problem in problems:
            print(f"{path}: line {problem.line}: {problem.message}", file=sys.stderr)
        return _fail(f"{path}: {len(problems)} problem(s); nothing imported")
    with transaction() as conn:
        counts = import_customers(conn, rows, now(), path.name)
    print(
        f"imported {len(rows)} customers from {path}: {counts.created} created,"
        f" {counts.updated} updated, {counts.opt_outs} opt-outs recorded"
        f" ({counts.already_opted_out} already opted out)"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    # A phone number in any formatting, a BSUID or a customer key (bot.store.identities.resolve).
    try:
        wa_id = normalise_wa_id(args.wa_id)
    except ValueError:
        wa_id = args.wa_id.strip()
    try:
        with transaction() as conn:
            found = profile(conn, wa_id)
    except ValueError as error:
        return _fail(f"invalid WA_ID: {error}")
    if found is None:
        return _fail(f"no customer with number {mask_identifier(wa_id)}")
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
    writer.writerow(["wa_id", "opted_out_at", "source", "message_id"])
    count = 0
    with transaction() as conn:
        for record in iter_opt_outs(conn):
            writer.writerow(
                [
                    record.wa_id or record.key,
                    record.opted_out_at.isoformat(),
                    record.source,
                    record.message_id,
                ]
            )
            count += 1
    return count


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
