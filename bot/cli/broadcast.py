"""`python -m bot broadcast [...]` and `python -m bot broadcast report ID`."""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
from pathlib import Path

from bot.broadcast import audience as audiences
from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.broadcast.rate import DEFAULT_RATE
from bot.broadcast.report import aggregate, format_report, load_rows
from bot.broadcast.runner import RasaApi, RasaUnavailable, Tally, send_pending
from bot.db import transaction
from bot.processes import Ports, auth_token
from bot.store.tags import normalise_tag_name
from bot.store.timestamps import now

DEFAULT_CONCURRENCY = 8
# Also sent to WhatsApp as biz_opaque_callback_data and used in URLs: keep it plain.
_BROADCAST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

DESCRIPTION = """\
Send an approved marketing template to customers who have not opted out.

The audience (every customer, --tag TAG, or the numbers in --audience FILE.csv that the
customer store knows) is selected in the database; customers with an OPT_OUT tag are left
out, and a customer who opts out while the broadcast runs is skipped at their turn. Each
message is sent by the Rasa server (action_send_broadcast in the customer's conversation),
so the bot must be running (`make run`): RASA_PORT (or --rasa-url) and RASA_AUTH_TOKEN
(or var/rasa_auth_token) say where and how to reach it.

The template's first button must be the "Stop promotions" quick reply; it is sent with the
payload STOP_PROMOTIONS, which starts the opt-out confirmation.

A broadcast can be resumed: run again with --id ID and only deliveries that are still
pending are attempted. Nobody receives a broadcast twice, even if the command was killed.

examples:
  python -m bot broadcast --template promo_offer --language en_US --param "20% off shoes" --dry-run
  python -m bot broadcast --template promo_offer --language en_US --param "20% off shoes" --tag VIP
  python -m bot broadcast --id 20250301-101500-ab12         # resume
  python -m bot broadcast report 20250301-101500-ab12
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broadcast",
        help="send a marketing template to every customer who has not opted out",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--template", metavar="NAME", help="approved template name, e.g. promo_offer")
    parser.add_argument("--language", metavar="CODE", help="template language code, e.g. en_US")
    parser.add_argument(
        "--param",
        action="append",
        metavar="VALUE",
        help="value of the next body parameter ({{1}}, {{2}}, ...); repeat for each",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--audience",
        type=Path,
        metavar="FILE.csv",
        help="only customers whose number is in this CSV (column wa_id or phone)",
    )
    who.add_argument("--tag", metavar="TAG", help="only customers with this tag")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the counts; send nothing and write nothing"
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        metavar="N",
        help=f"messages per second at most (default {DEFAULT_RATE:g}, WhatsApp's standard limit)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        choices=range(1, 65),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"sends in flight at once, 1-64 (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--rasa-url",
        action="append",
        metavar="URL",
        help="a Rasa server to send through (default http://127.0.0.1:$RASA_PORT); repeat for"
        " replicas that share their tracker and lock stores",
    )
    parser.add_argument(
        "--id",
        dest="broadcast_id",
        metavar="ID",
        help="the broadcast's id: resumes it if it exists (default for a new one: a fresh id)",
    )
    parser.set_defaults(handler=_broadcast)

    commands = parser.add_subparsers(dest="broadcast_command", metavar="{report}")
    report = commands.add_parser(
        "report",
        help="where a broadcast stands: sent, delivered, read, failed, skipped, pending",
        description="Where a broadcast stands: sent, delivered, read (from the delivery status"
        " webhooks), failed (by error code), skipped as opted out, interrupted and pending.",
    )
    report.add_argument("report_id", metavar="ID")
    report.set_defaults(handler=_report)


def _broadcast(args: argparse.Namespace) -> int:
    if args.broadcast_id is not None and not _BROADCAST_ID.fullmatch(args.broadcast_id):
        return _fail(
            "invalid --id: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit"
        )
    try:
        audience = _audience(args)
    except (OSError, ValueError) as error:
        return _fail(f"invalid audience: {error}")
    with transaction() as conn:
        existing = deliveries.get(conn, args.broadcast_id) if args.broadcast_id else None
    if existing is not None:
        return _resume(existing, args, audience)
    if not args.template or not args.language:
        return _fail("a new broadcast needs --template and --language (or --id of an existing one)")
    broadcast_id = args.broadcast_id or f"{now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    return _create_and_send(broadcast_id, args, audience)


def _audience(args: argparse.Namespace) -> Audience | None:
    """The audience the options describe; None when they describe none (resume as stored)."""
    if args.audience is not None:
        return Audience(file=args.audience, file_sha256=audiences.file_sha256(args.audience))
    if args.tag is not None:
        return Audience(tag=normalise_tag_name(args.tag))
    return None


def _create_and_send(broadcast_id: str, args: argparse.Namespace, audience: Audience | None) -> int:
    audience = audience or Audience()
    params = tuple(args.param or ())
    rate = args.rate or DEFAULT_RATE
    with transaction() as conn:
        if audience.file is not None:
            try:
                with audience.file.open(newline="", encoding="utf-8-sig") as lines:
                    load = audiences.load_numbers(conn, audiences.parse_audience_csv(lines))
            except UnicodeDecodeError:
                return _fail(f"{audience.file} is not UTF-8 text; nothing sent")
            for problem in load.problems:
                print(f"{audience.file}: line {problem.line}: {problem.message}", file=sys.stderr)
            if load.problem_count:
                return _fail(f"{audience.file}: {load.problem_count} problem(s); nothing sent")
            print(f"{audience.file}: {load.numbers} distinct numbers and user ids")
            unknown = audiences.unknown_identifiers(conn)
        selection = audiences.count(conn, audience)
        if args.dry_run:
            print("dry run: nothing sent, nothing written")
            print(f"audience:             {selection.audience} ({audience.description})")
            if audience.file is not None:
                print(f"not in customer store: {unknown} (never sent)")
                audiences.drop_numbers(conn)
            print(f"would send:           {selection.allowed}")
            print(f"skipped as opted out: {selection.opted_out}")
            return 0
        broadcast = deliveries.create(
            conn,
            broadcast_id,
            args.template,
            args.language,
            params,
            audience,
            rate,
            selection.audience,
            now(),
        )
        if audience.file is not None:
            audiences.drop_numbers(conn)
    print(
        f"broadcast {broadcast.id}: {broadcast.audience_count - broadcast.excluded_opted_out} to send,"
        f" {broadcast.excluded_opted_out} left out as opted out ({broadcast.audience})"
    )
    return _send(broadcast, rate, args)


def _resume(broadcast: deliveries.Broadcast, args: argparse.Namespace, audience: Audience | None) -> int:
    differences = [
        f"{name} {given!r} (the broadcast has {stored!r})"
        for name, given, stored in (
            ("--template", args.template, broadcast.template),
            ("--language", args.language, broadcast.language),
            ("--param", tuple(args.param) if args.param else None, broadcast.params),
            ("audience", audience.description if audience else None, broadcast.audience),
        )
        if given is not None and given != stored
    ]
    if differences:
        return _fail(f"broadcast {broadcast.id} exists with other settings: " + "; ".join(differences))
    if args.dry_run:
        with transaction() as conn:
            pending, opted_out = deliveries.pending_counts(conn, broadcast.id)
        print(f"dry run of resuming {broadcast.id}: nothing sent, nothing written")
        print(f"pending:              {pending}")
        print(f"would send:           {pending - opted_out}")
        print(f"skipped as opted out: {opted_out} (opted out since the selection)")
        return 0
    print(f"resuming broadcast {broadcast.id} ({broadcast.template}, {broadcast.audience})")
    return _send(broadcast, args.rate or broadcast.rate, args)


def _send(broadcast: deliveries.Broadcast, rate: float, args: argparse.Namespace) -> int:
    token = auth_token()
    urls = args.rasa_url or [f"http://127.0.0.1:{Ports.from_env().rasa}"]
    rasa = [RasaApi(url.rstrip("/"), token) for url in urls]
    try:
        tally = asyncio.run(send_pending(broadcast.id, rasa, rate, args.concurrency, sys.stderr))
    except RasaUnavailable as error:
        return _fail(f"{error}\nnothing sent; resume with --id {broadcast.id} once the bot runs")
    except KeyboardInterrupt:
        print(f"\nstopped; resume with --id {broadcast.id}", file=sys.stderr)
        return 130
    print(_summary(broadcast.id, tally))
    if tally.stopped:
        return _fail(f"stopped early: {tally.stopped}\nresume with --id {broadcast.id}")
    return 0


def _summary(broadcast_id: str, tally: Tally) -> str:
    lines = [
        f"broadcast {broadcast_id}: {tally.sent} sent, {tally.skipped_opted_out} skipped as opted out,"
        f" {tally.failed} failed"
    ]
    if tally.throttled or tally.untouched:
        lines.append(
            f"{tally.throttled + tally.untouched} still pending ({tally.throttled} throttled by WhatsApp):"
            f" run again with --id {broadcast_id}"
        )
    if tally.interrupted:
        lines.append(
            f"{tally.interrupted} interrupted after the claim (never sent again; see the action log)"
        )
    if tally.rasa_errors:
        lines.append(f"{tally.rasa_errors} trigger_intent calls failed")
    lines.append(f"statuses: python -m bot broadcast report {broadcast_id}")
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    with transaction() as conn:
        broadcast = deliveries.get(conn, args.report_id)
        if broadcast is None:
            return _fail(f"no broadcast {args.report_id!r}")
        rows = load_rows(conn, broadcast.id)
    print(format_report(broadcast, aggregate(rows, broadcast.excluded_opted_out)))
    return 0


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {value}")
    return number


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
