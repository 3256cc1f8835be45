"""Sustained signed-webhook load on the production path: one Rasa replica, then two.

Run from the project root (`make bench` does):

    .venv/bin/python -m bench.load [--model models/current.tar.gz] [--duration 60] [--rates 10,20,40]
                                   [--json FILE]

A throwaway PostgreSQL (conversations, customers, dedupe) and Redis (per-conversation locks), one
action server, two Rasa servers on them (`tests.rasa_servers`) and the fake Graph API, all on
loopback. For each rate, `--duration` seconds of webhooks signed as Meta signs them, sent at that
rate whatever the answers do (open loop), first all to replica A, then alternately to A and B (the
tiny round-robin a load balancer would be). Every message is "hello" (greet -> utter_greet: one
reply each); a customer writes every `CUSTOMER_PERIOD_S` seconds, so that each conversation grows
over the run while its turns rarely wait for each other's lock.

Reported per run: messages sent, throughput (messages answered 200 with their reply, per second
from the first send to the last answer), latency of the webhook answer from when the message was
due (p50, p90, p99, max; the reply has been sent by then), and messages lost: not answered 200, or
answered without a reply at the fake Graph API; of them, those the client gave up on after
CLIENT_TIMEOUT_S without an answer (WhatsApp would deliver them again). Exit code 1 when any
message was lost.

Both replicas run during the one-replica runs too (B idle): the machine is the same in both.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.results import scratch_kept_on_failure, write_json
from bench.stats import Attempt, LatencySummary, losses, per_second
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER, sign
from tests.rasa_servers import APP_SECRET, MODEL, RunningBot, start_bot_on
from tests.servers import postgres_server, redis_server

MESSAGE = "hello"
CUSTOMER_PERIOD_S = 5.0  # how often one customer writes
CLIENT_TIMEOUT_S = 60.0
WARM_UP_PER_REPLICA = 5


# --- the plan (pure) ---


def due_times(rate: float, seconds: float) -> list[float]:
    """When each message is due, in seconds from the start: `rate` a second for `seconds`."""
    return [n / rate for n in range(round(rate * seconds))]


def customers_needed(rate: float) -> int:
    """Enough customers that each writes once every CUSTOMER_PERIOD_S at this rate."""
    return max(1, round(rate * CUSTOMER_PERIOD_S))


def round_robin(targets: Sequence[str], count: int) -> list[str]:
    """Message n goes to targets[n % len(targets)]: what a round-robin balancer does."""
    return [targets[n % len(targets)] for n in range(count)]


@dataclass(frozen=True)
class Run:
    replicas: int
    rate: float
    seconds: float  # from the first send to the last answer
    attempts: tuple[Attempt, ...]


def summary(run: Run, replies_by_sender: dict[str, int]) -> dict[str, Any]:
    lost = losses(run.attempts, replies_by_sender)
    answered = [a.seconds for a in run.attempts if a.status == 200]
    latency = LatencySummary.of(answered) if answered else None
    return {
        "replicas": run.replicas,
        "rate_per_s": run.rate,
        "sent": len(run.attempts),
        "throughput_per_s": per_second(len(run.attempts) - lost.total, run.seconds),
        "latency_ms": None
        if latency is None
        else {q: getattr(latency, q) * 1000 for q in ("p50", "p90", "p99", "max")},
        "lost": {"non_200": lost.non_200, "missing_replies": lost.missing_replies, "total": lost.total},
        # 0: no answer within CLIENT_TIMEOUT_S (the client gave up; WhatsApp would retry)
        "statuses": {
            str(status): count for status, count in sorted(Counter(a.status for a in run.attempts).items())
        },
    }


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'replicas':>8}{'rate/s':>8}{'sent':>7}{'done/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'lost':>6}{'of which timed out':>20}"
    )
    lines = [header]
    for row in rows:
        latency = row["latency_ms"] or dict.fromkeys(("p50", "p90", "p99", "max"), float("nan"))
        lines.append(
            f"{row['replicas']:>8}{row['rate_per_s']:>8g}{row['sent']:>7}{row['throughput_per_s']:>8.1f}"
            + "".join(f"{latency[q]:>8.0f}" for q in ("p50", "p90", "p99", "max"))
            + f"{row['lost']['total']:>6}{row['statuses'].get('0', 0):>20}"
        )
    return "\n".join(lines)


# --- the load (I/O) ---


class Customers:
    """Fresh customer numbers; each run has its own, so runs do not share conversations."""

    def __init__(self) -> None:
        self._numbers: Iterator[int] = itertools.count(4919000000001)

    def take(self, count: int) -> list[str]:
        return [str(next(self._numbers)) for _ in range(count)]


async def send(session: aiohttp.ClientSession, url: str, sender: str, due: float) -> Attempt:
    body = json.dumps(meta.text(sender, MESSAGE)).encode()  # a new wamid each time
    headers = {HEADER: sign(body, APP_SECRET), "Content-Type": "application/json"}
    loop = asyncio.get_running_loop()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        status = 0  # no answer at all: lost
    return Attempt(sender=sender, status=status, seconds=loop.time() - due)


async def open_loop(
    session: aiohttp.ClientSession, urls: Sequence[str], senders: Sequence[str], rate: float, seconds: float
) -> tuple[list[Attempt], float]:
    """Messages at a fixed rate whatever the answers do, each timed from when it was due."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    times = due_times(rate, seconds)
    tasks = []
    for n, (offset, url) in enumerate(zip(times, round_robin(urls, len(times)), strict=True)):
        due = start + offset
        await asyncio.sleep(due - loop.time())  # returns at once when already late
        tasks.append(asyncio.create_task(send(session, url, senders[n % len(senders)], due)))
    attempts = list(await asyncio.gather(*tasks))
    return attempts, loop.time() - start


async def measure(replicas: list[RunningBot], rates: list[float], seconds: float) -> list[Run]:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    customers = Customers()
    runs = []
    # No connection cap: the open loop must never wait for a free connection on the client side.
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        for bot in replicas:  # load the model's lazy parts and open the pools on every side
            for sender in customers.take(WARM_UP_PER_REPLICA):
                await send(session, bot.webhook_url, sender, asyncio.get_running_loop().time())
        for count in (1, len(replicas)):
            urls = [bot.webhook_url for bot in replicas[:count]]
            for rate in rates:
                print(f"{count} replica(s), {rate:g} msg/s for {seconds:g} s ...", file=sys.stderr)
                attempts, elapsed = await open_loop(
                    session, urls, customers.take(customers_needed(rate)), rate, seconds
                )
                runs.append(Run(count, rate, elapsed, tuple(attempts)))
    return runs


def replies_by_sender(bot: RunningBot) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in bot.graph.state.sent:
        counts[message["body"]["to"]] = counts.get(message["body"]["to"], 0) + 1
    return counts


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure against freshly started servers; their logs are kept when anything fails."""
    print(
        f"starting PostgreSQL, Redis, the action server and two Rasa servers ({args.model}) ...",
        file=sys.stderr,
    )
    with (
        scratch_kept_on_failure("bench-load-") as workdir,
        postgres_server() as postgres,
        redis_server() as redis,
    ):
        url = postgres.create_database()
        for name in ("a", "b"):
            (workdir / name).mkdir()
        first = start_bot_on(workdir / "a", url, redis.url, model=args.model.resolve())
        try:
            second = first.start_replica(workdir / "b")
            try:
                runs = asyncio.run(measure([first, second], args.rates, args.duration))
            finally:
                second.stop()
            replies = replies_by_sender(first)
        finally:
            first.stop()
    return [summary(r, replies) for r in runs]


def rates(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("rates: positive numbers separated by commas, e.g. 10,20,40")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=MODEL, help="trained model (default: models/current.tar.gz)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per rate and topology")
    parser.add_argument("--rates", type=rates, default=[10.0, 20.0, 40.0], help="messages/s, e.g. 10,20,40")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = run(args)
    print(table(rows))
    write_json(args.json, rows)
    lost = sum(row["lost"]["total"] for row in rows)
    if lost:
        print(f"{lost} messages lost", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
