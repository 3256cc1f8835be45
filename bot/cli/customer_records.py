"""`python -m bot customers evidence|forget`: a customer's consent record, and erasure."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bot.cli.opt_out_export import KIND_TEXT
from bot.dashboard.evidence import evidence_document
from bot.db import checkpoint, database_url, transaction
from bot.masking import mask_identifier
from bot.store import erasure
from bot.store.consent_record import consent_record
from bot.store.conversations import count_conversations, delete_conversations, tracker_url
from bot.store.identifiers import looks_like_new_key, parse_human
from bot.store.timestamps import now

ID_HELP = (
    "phone number (16505551234, +1 650 555 1234), BSUID (US.13491208655302741918),"
    " parent BSUID (US.ENT.11815799212886844830) or customer key (c_...)"
)
INVALID_ID = (
    "invalid ID: expected a phone number in international form (e.g. 16505551234), a BSUID"
    " (e.g. US.13491208655302741918), a parent BSUID (US.ENT.…) or a customer key (c_…)"
)

FORGET_DESCRIPTION = """\
Erase a customer's personal data (GDPR Art. 17) and keep them off marketing for good.

Deleted: name, username, language, every phone number and BSUID, the words and
message ids of the consent history, other tags, the webhook records of their
messages and their conversation in Rasa's tracker store (TRACKER_STORE_URL).
Kept, anonymised under a new customer key: the OPT_OUT tag and the consent
events (kinds, sources, times, which question in which version), so that the
opt-out can still be proven. Added: a keyed hash (HMAC, SUPPRESSION_SECRET) of
each identifier on the suppression list, which every sender consults: an
import or a broadcast that brings the number back never reaches it. The
erasure is recorded with its time and the operator, without personal data.
Merged customers are erased together (they are one person).

Run it with the database role that owns the tables (the one `db upgrade` uses):
the bot's own role may not write erasures. Cannot be undone.
"""


def register(commands: argparse._SubParsersAction) -> None:
    evidence = commands.add_parser(
        "evidence",
        help="print a customer's complete consent record (JSON, or a printable HTML page)",
        description="Print a customer's complete consent record as JSON: identifiers, the opt-out,"
        " every consent event with its evidence (the customer's words or the button, template or link"
        " used, the language, the question shown with its response name and version, the answer, message"
        " ids and times) and every opt-out request. Exit code 1 if the store does not know the ID.",
    )
    evidence.add_argument("id", metavar="ID", help=ID_HELP)
    evidence.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write the record as a printable HTML page to FILE (readable by its owner only)",
    )
    evidence.set_defaults(handler=_evidence)

    forget = commands.add_parser(
        "forget",
        help="erase a customer's personal data, keeping the opt-out and a keyed hash on the suppression list",
        description=FORGET_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    forget.add_argument("id", metavar="ID", help=ID_HELP)
    forget.add_argument(
        "--operator", required=True, metavar="NAME", help="who erases (recorded with the erasure)"
    )
    forget.set_defaults(handler=_forget)


def _evidence(args: argparse.Namespace) -> int:
    raw = args.id.strip()
    try:
        with transaction() as conn:
            record = consent_record(conn, raw)
    except ValueError:
        return _fail(_unknown_key(raw) or INVALID_ID)
    if record is None:
        return _fail(_nobody(raw))
    print(json.dumps(record, indent=2, ensure_ascii=False))
    if args.html is not None:
        try:
            _write_private(args.html, evidence_document(record))
        except OSError as error:
            return _fail(f"cannot write {args.html}: {error.strerror}")
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def _forget(args: argparse.Namespace) -> int:
    raw = args.id.strip()
    try:
        operator = erasure.check_operator(args.operator)
    except ValueError as error:
        return _fail(f"--operator: {error}")
    url = tracker_url()
    try:
        with transaction() as conn:
            found = erasure.plan(conn, raw)
            if found is None:
                return _fail(_nobody(raw))
            # The store first, uncommitted: if the database refuses (the bot's role, a guard),
            # nothing is deleted anywhere. Then the conversation: if that fails, the store rolls
            # back and the customer can be found and forgotten again.
            report = erasure.forget(conn, found, operator, now(), count_conversations(url, found.keys))
            delete_conversations(url, found.keys, store=conn)
    except erasure.AlreadyErased as error:
        return _fail(f"{error}; nothing to do")
    except ValueError:
        return _fail(_unknown_key(raw) or INVALID_ID)
    except DBAPIError as error:
        return _fail(
            f"the database refused the erasure ({type(error.orig).__name__}); nothing was erased."
            " Run it as the role that owns the tables (docs/consent-records.md)"
        )
    # A message that arrived meanwhile started a new conversation under the old key.
    swept = delete_conversations(url, found.keys)
    for database in (database_url(), url):
        checkpoint(database)
    print(
        f"erased customer (erasure {report.erasure_id}): {report.customers} customer row(s) anonymised,"
        f" {report.identifiers} identifier(s) now only on the suppression list,"
        f" {report.conversation_events + swept} conversation event(s) and {report.message_records}"
        " message record(s) deleted; the opt-out and the consent events stay, anonymised"
    )
    return 0


def _write_private(path: Path, text: str) -> None:
    """Written beside the target and renamed when complete, 0600: it holds identifiers."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _unknown_key(raw: str) -> str | None:
    return f"no customer with key {raw}" if looks_like_new_key(raw) else None


def _nobody(raw: str) -> str:
    """Identifiers are personal data: echoed masked, as in the logs."""
    identifier = parse_human(raw)
    return f"no customer with {KIND_TEXT[identifier.kind]} {mask_identifier(identifier.value)}"


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
