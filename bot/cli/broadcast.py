"""`python -m bot broadcast [...]` and `python -m bot broadcast report ID`."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import uvloop

from bot.broadcast import audience as audiences
from bot.broadcast import deliveries
from bot.broadcast.audience import Audience
from bot.broadcast.rate import DEFAULT_RATE, UNLIMITED
from bot.broadcast.report import aggregate, format_report, load_rows
from bot.broadcast.states import TO_DO, DeliveryState
from bot.broadcast.worker import LANES, LEASE, WorkerSettings, serve
from bot.db import database_url, transaction
from bot.opt_out_link.settings import LinkSettings
from bot.store.tags import normalise_tag_name
from bot.store.timestamps import now
from bot.whatsapp.cloud_api import CloudApiClient, RetryPolicy
from bot.whatsapp.config import WhatsAppConfig

PROGRESS_EVERY = 2.0  # seconds
# This run's outcomes, in the order the progress line and the summary name them.
_OUTCOMES = (DeliveryState.SENT, DeliveryState.SKIPPED_OPTED_OUT, DeliveryState.FAILED)
# Also sent to WhatsApp as biz_opaque_callback_data and used in URLs: keep it plain.
_BROADCAST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

DESCRIPTION = """\
Send an approved marketing template to customers who have not opted out.

The audience (every customer, --tag TAG, or the numbers in --audience FILE.csv that the
customer store knows) is selected in the database; customers with an OPT_OUT tag are left
out, and a customer who opts out while the broadcast runs is skipped at their turn. The
messages are sent by --workers worker processes straight to the Cloud API (WHATSAPP_ACCESS_TOKEN,
WHATSAPP_PHONE_NUMBER_ID), not through Rasa: the bot need not run. More workers, on other
hosts sharing the PostgreSQL database, join with `python -m bot broadcast worker`; all of
them together keep to --rate, WhatsApp's limit for the business number.

The template's first button must be the "Stop promotions" quick reply; it is sent with the
payload STOP_PROMOTIONS, which starts the opt-out confirmation.

A broadcast can be resumed: run again with --id ID and only deliveries that are still
pending are attempted. Nobody receives a broadcast twice, even if the command was killed: a
message whose request left but whose answer was lost is reported as interrupted, not resent.

examples:
  python -m bot broadcast --template promo_offer --language en_US --param "20% off shoes" --dry-run
  python -m bot broadcast --template promo_offer --language en_US --param "20% off shoes" --tag VIP
  python -m bot broadcast --id 20250301-101500-ab12         # resume
  python -m bot broadcast report 20250301-101500-ab12
  python -m bot broadcast worker                            # on another host: join any broadcast
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
        type=_rate,
        metavar="N",
        help=f"messages per second at most, all workers together, or 'unlimited' (default"
        f" {DEFAULT_RATE:g}, WhatsApp's standard limit)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        choices=range(1, 65),
        metavar="N",
        help="worker processes on this machine, 1-64 (default: the number of cores on PostgreSQL,"
        " 1 on SQLite)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        choices=range(1, 17),
        default=LANES,
        metavar="N",
        help=f"batches in flight per worker, 1-16 (default {LANES})",
    )
    parser.add_argument(
        "--id",
        dest="broadcast_id",
        metavar="ID",
        help="the broadcast's id: resumes it if it exists (default for a new one: a fresh id)",
    )
    parser.set_defaults(handler=_broadcast)

    commands = parser.add_subparsers(dest="broadcast_command", metavar="{report,worker}")
    report = commands.add_parser(
        "report",
        help="where a broadcast stands: sent, delivered, read, failed, skipped, pending",
        description="Where a broadcast stands: sent, delivered, read (from the delivery status"
        " webhooks), failed (by error code), skipped as opted out, interrupted and pending.",
    )
    report.add_argument("report_id", metavar="ID")
    report.set_defaults(handler=_report)

    worker = commands.add_parser(
        "worker",
        help="a long-running worker that sends any broadcast's pending deliveries",
        description="Send the pending deliveries of every broadcast (or of --id), at each"
        " broadcast's rate shared with all other workers; wait for new ones. Run it on other hosts"
        " that share the PostgreSQL database (DATABASE_URL) and the WHATSAPP_* and"
        " OPT_OUT_LINK_SECRET settings.",
    )
    worker.add_argument("--id", dest="worker_broadcast", metavar="ID", help="only this broadcast")
    worker.add_argument(
        "--until-done", action="store_true", help="exit when nothing is left to send instead of waiting"
    )
    worker.add_argument("--lanes", type=int, choices=range(1, 17), default=LANES, metavar="N")
    worker.add_argument(
        "--lease",
        type=float,
        default=LEASE.total_seconds(),
        metavar="SECONDS",
        help="after how long a dead worker's unanswered sends are settled from the status webhooks"
        f" (default {LEASE.total_seconds():g}; longer than any request may take)",
    )
    worker.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    worker.set_defaults(handler=_worker)


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


def default_workers(url: str, cores: int | None) -> int:
    """One worker per core, except on SQLite: there every worker is one more writer on a single
    file lock, and two of them already starved the webhook's writes in the benchmark (docs/benchmarks.md)."""
    if url.startswith("sqlite"):
        return 1
    return cores or 1


def _send(broadcast: deliveries.Broadcast, rate: float, args: argparse.Namespace) -> int:
    if not WhatsAppConfig.load({}).can_send:
        return _fail(
            "cannot send: set WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
            f"\nnothing sent; resume with --id {broadcast.id}"
        )
    with transaction() as conn:
        deliveries.set_rate(conn, broadcast.id, rate)
        before = deliveries.state_counts(conn, broadcast.id)
    command = [
        sys.executable, "-m", "bot", "broadcast", "worker", "--id", broadcast.id, "--until-done",
        "--lanes", str(args.concurrency), "--log-level", "warning",
    ]  # fmt: skip
    count = args.workers or default_workers(database_url(), os.cpu_count())
    workers = [subprocess.Popen(command) for _ in range(count)]
    started = time.monotonic()
    to_attempt = sum(before[s] for s in TO_DO)
    try:
        while any(worker.poll() is None for worker in workers):
            time.sleep(PROGRESS_EVERY)
            _progress(
                sys.stderr, _line(before, _counts(broadcast.id), to_attempt, time.monotonic() - started)
            )
    except KeyboardInterrupt:
        for worker in workers:
            worker.wait()
        print(f"\nstopped; resume with --id {broadcast.id}", file=sys.stderr)
        return 130
    after = _counts(broadcast.id)
    _progress(sys.stderr, _line(before, after, to_attempt, time.monotonic() - started), final=True)
    print(_summary(broadcast.id, before, after))
    failed = [worker.returncode for worker in workers if worker.returncode != 0]
    if failed:
        return _fail(f"{len(failed)} worker(s) failed (exit {failed[0]}); resume with --id {broadcast.id}")
    return 0


def _counts(broadcast_id: str) -> Counter[DeliveryState]:
    with transaction() as conn:
        return deliveries.state_counts(conn, broadcast_id)


def _line(
    before: Counter[DeliveryState], after: Counter[DeliveryState], to_attempt: int, elapsed: float
) -> str:
    """Pure: this run's progress from the state counts before it and now."""
    sent, skipped, failed = (after[s] - before[s] for s in _OUTCOMES)
    attempted = sent + skipped + failed + after[DeliveryState.SENDING] - before[DeliveryState.SENDING]
    speed = attempted / elapsed if elapsed > 0 else 0.0
    return (
        f"sent {sent}, skipped (opted out) {skipped}, failed {failed}"
        f" | {attempted}/{to_attempt} in {elapsed:.1f} s ({speed:.1f}/s)"
    )


def _progress(stream, line: str, final: bool = False) -> None:
    # On a terminal the line is rewritten in place; in a log, one line per report.
    if stream.isatty():
        stream.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
    else:
        stream.write(line + "\n")
    stream.flush()


def _summary(broadcast_id: str, before: Counter[DeliveryState], after: Counter[DeliveryState]) -> str:
    sent, skipped, failed = (after[s] - before[s] for s in _OUTCOMES)
    lines = [f"broadcast {broadcast_id}: {sent} sent, {skipped} skipped as opted out, {failed} failed"]
    left = sum(after[s] for s in TO_DO)
    if left:
        lines.append(
            f"{left} still pending (throttled by WhatsApp or stopped): run again with --id {broadcast_id}"
        )
    interrupted = after[DeliveryState.SENDING] - before[DeliveryState.SENDING]
    if interrupted:
        lines.append(f"{interrupted} interrupted after the request left (outcome unknown; never sent again)")
    lines.append(f"statuses: python -m bot broadcast report {broadcast_id}")
    return "\n".join(lines)


def _worker(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(args.log_level.upper())
    config = WhatsAppConfig.load({})
    if not config.can_send:
        return _fail("cannot send: set WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID")
    try:
        link = LinkSettings.from_env()
    except ValueError as error:
        return _fail(f"opt-out link settings: {error}")
    # Throttling is the worker's to handle (shared rate, per-customer retry), not the client's:
    # one attempt, so a 130429 reaches the bucket at once instead of sleeping in one send.
    client = CloudApiClient(
        config.api_url, config.phone_number_id, config.access_token, retry=RetryPolicy(attempts=1)
    )
    settings = WorkerSettings(config.phone_number_id, lanes=args.lanes, lease=timedelta(seconds=args.lease))

    async def work() -> None:
        try:
            tally = await serve(
                client, settings, link, only=args.worker_broadcast, until_done=args.until_done
            )
            logging.getLogger(__name__).info("worker %s done: %s", settings.name, tally)
        finally:
            await client.close()

    try:
        # uvloop (Sanic's loop, installed with it): the worker's time is mostly the event loop and
        # aiohttp's per-request work, which uvloop roughly halves (README, broadcast benchmark).
        uvloop.run(work())
    except KeyboardInterrupt:
        return 130
    return 0


def _report(args: argparse.Namespace) -> int:
    with transaction() as conn:
        broadcast = deliveries.get(conn, args.report_id)
        if broadcast is None:
            return _fail(f"no broadcast {args.report_id!r}")
        rows = load_rows(conn, broadcast.id)
    print(format_report(broadcast, aggregate(rows, broadcast.excluded_opted_out)))
    return 0


def _rate(value: str) -> float:
    if value.strip().lower() == "unlimited":
        return UNLIMITED
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a number of messages per second, or 'unlimited': {value}"
        ) from None
    if not 0 < number < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number: {value}")
    return number


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
