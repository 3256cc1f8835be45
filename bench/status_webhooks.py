"""Status webhooks at broadcast volume: how many the bot records per second, and how fast it answers.

Run from the project root (`make bench-status` does):

    .venv/bin/python -m bench.status_webhooks --model models/current.tar.gz [--send-rate 80] [--json FILE]

Every template a broadcast sends comes back as up to three status webhooks (sent, delivered, read),
so a broadcast at `--send-rate` messages/s brings about 3 x that many. One Rasa server with the
WhatsApp channel (`tests.rasa_servers.start_bot`, SQLite, fake Graph API on loopback) gets signed
status webhooks of Meta's shape, one status each, for messages sent in order: sent, delivered, read.

- Open loop at 3 x `--send-rate` webhooks/s for `--duration` s, each answer timed from when it was
  due (a late client counts against the bot, never in its favour).
- Closed loop: `--concurrency` senders, one webhook after another, for `--duration` s: the most the
  bot records per second.

Afterwards every message must have its last status ("read") in the database: a webhook answered
200 and not recorded would be a loss. Numbers are reported, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from bench.results import write_json
from bench.stats import Attempt, LatencySummary, per_second, percentile
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER, sign
from tests.rasa_servers import APP_SECRET, RunningBot, bot_in_scratch

ORDER = ("sent", "delivered", "read")
RECIPIENT = "16505551234"
CLIENT_TIMEOUT_S = 60.0


def statuses(prefix: str) -> Iterator[tuple[str, str]]:
    """(wamid, status) for message after message, each message's three statuses in order."""
    for n in itertools.count():
        for status in ORDER:
            yield f"wamid.{prefix}{n:08d}", status


async def post_status(
    session: aiohttp.ClientSession, bot: RunningBot, wamid: str, status: str, due: float
) -> Attempt:
    body = json.dumps(meta.status(wamid, RECIPIENT, status)).encode()
    headers = {HEADER: sign(body, APP_SECRET), "Content-Type": "application/json"}
    loop = asyncio.get_running_loop()
    try:
        async with session.post(bot.webhook_url, data=body, headers=headers) as response:
            await response.read()
            answer = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        answer = 0
    return Attempt(sender=f"{wamid} {status}", status=answer, seconds=loop.time() - due)


async def open_loop(
    session: aiohttp.ClientSession, bot: RunningBot, rate: float, seconds: float
) -> tuple[list[Attempt], float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for n, (wamid, status) in zip(range(int(rate * seconds)), statuses("open"), strict=False):
        due = start + n / rate
        await asyncio.sleep(due - loop.time())  # returns at once when already late
        tasks.append(asyncio.create_task(post_status(session, bot, wamid, status, due)))
    attempts = list(await asyncio.gather(*tasks))
    return attempts, loop.time() - start


async def closed_loop(
    session: aiohttp.ClientSession, bot: RunningBot, concurrency: int, seconds: float
) -> tuple[list[Attempt], float]:
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def sender(prefix: str) -> list[Attempt]:
        attempts = []
        for wamid, status in statuses(prefix):
            if loop.time() - start >= seconds:
                return attempts
            attempts.append(await post_status(session, bot, wamid, status, loop.time()))
        return attempts  # not reached: statuses() never ends

    results = await asyncio.gather(*(sender(f"closed{c:02d}x") for c in range(concurrency)))
    return [a for attempts in results for a in attempts], loop.time() - start


def summary(attempts: list[Attempt], elapsed: float) -> dict[str, Any]:
    answered = [a.seconds for a in attempts if a.status == 200]
    latency = LatencySummary.of(answered) if answered else None
    return {
        "webhooks": len(attempts),
        "answered_200_per_s": per_second(len(answered), elapsed),
        "p50_ms": latency.p50 * 1000 if latency else None,
        "p95_ms": percentile(answered, 95) * 1000 if answered else None,
        "p99_ms": latency.p99 * 1000 if latency else None,
        "answers": {str(k): v for k, v in sorted(Counter(a.status for a in attempts).items())},
    }


def unrecorded(bot: RunningBot, attempts: list[Attempt]) -> int:
    """Status webhooks answered 200 whose status (or a later one) is not in the database."""
    engine = sa.create_engine(bot.database_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT wamid, status FROM message_statuses")).all())
    engine.dispose()
    missing = 0
    for attempt in attempts:
        wamid, status = attempt.sender.split(" ")
        if attempt.status != 200:
            continue
        if wamid not in stored or ORDER.index(stored[wamid]) < ORDER.index(status):
            missing += 1
    return missing


async def measure(bot: RunningBot, args: argparse.Namespace) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        await closed_loop(session, bot, 2, 2.0)  # warm-up: pools, first inserts
        rate = 3 * args.send_rate
        print(f"open loop, {rate:g} status webhooks/s for {args.duration:g} s ...", file=sys.stderr)
        opened, open_s = await open_loop(session, bot, rate, args.duration)
        print(f"closed loop, {args.concurrency} senders for {args.duration:g} s ...", file=sys.stderr)
        closed, closed_s = await closed_loop(session, bot, args.concurrency, args.duration)
    return {
        "send_rate": args.send_rate,
        "open_loop": {"offered_per_s": rate, **summary(opened, open_s)},
        "closed_loop": {"concurrency": args.concurrency, **summary(closed, closed_s)},
        "answered_but_not_stored": unrecorded(bot, opened + closed),
    }


def table(result: dict[str, Any]) -> str:
    opened, closed = result["open_loop"], result["closed_loop"]
    rows = [
        (f"open loop, {opened['offered_per_s']:g}/s offered (3 x {result['send_rate']:g} sends/s)", opened),
        (f"closed loop, {closed['concurrency']} concurrent senders", closed),
    ]
    lines = [
        f"| {'status webhooks':<52} | answered 200/s | p50 ms | p95 ms | p99 ms | answers |",
        f"|{'-' * 54}|---------------:|-------:|-------:|-------:|---------|",
    ]
    for name, row in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in row["answers"].items())
        lines.append(
            f"| {name:<52} | {row['answered_200_per_s']:>14.1f} | {row['p50_ms'] or 0:>6.0f} |"
            f" {row['p95_ms'] or 0:>6.0f} | {row['p99_ms'] or 0:>6.0f} | {answers} |"
        )
    lines.append(f"answered 200 but not stored: {result['answered_but_not_stored']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="trained model, e.g. models/current.tar.gz")
    parser.add_argument(
        "--send-rate", type=float, default=80.0, help="claimed broadcast sends/s (x3 offered)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per loop")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop senders")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with bot_in_scratch("status-webhooks-", model=args.model) as bot:
        result = asyncio.run(measure(bot, args))
    print(table(result))
    write_json(args.json, result)
    return 1 if result["answered_but_not_stored"] else 0


if __name__ == "__main__":
    sys.exit(main())
