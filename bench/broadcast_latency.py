"""Inbound webhook latency while a broadcast runs: idle, then during a broadcast at `--rate`.

Run from the project root (`make bench-broadcast-latency` does; needs a trained model):

    .venv/bin/python -m bench.broadcast_latency --model models/current.tar.gz [--rate 80]
                                                [--duration 30] [--inbound-rate 2] [--json FILE]

One Rasa server with the WhatsApp channel and its action server (`tests.rasa_servers.start_bot`,
SQLite: the one-machine default) and the Graph API stand-in, which here also sends WhatsApp's
status webhooks (sent, delivered, read) back to the bot for every message it accepts. The
database gets enough customers for the whole run (bench.broadcast_send's population: 10% opted
out). Customers write "hello" at `--inbound-rate` per second (open loop, bench.load), each answer
timed from when it was due, for `--duration` seconds:
1. idle;
2. while `python -m bot broadcast --rate R` sends (one worker, as on SQLite by default), with
   about 3 x R status webhooks a second coming back;
3. idle again, once the bot has answered every status webhook (a backlog is not idle): how much
   the machine's other load moved meanwhile.
Target: the median during the broadcast within 1.5 x the first idle median.
Reported, not asserted; the exit code is 0 whenever it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from bench.broadcast_send import populate
from bench.load import Customers, open_loop, send
from bench.results import write_json
from bench.stats import Attempt, LatencySummary
from bot import PROJECT_ROOT
from bot.fake_graph_api import StatusWebhooks
from tests.rasa_servers import APP_SECRET, MODEL, RunningBot, bot_in_scratch

RATIO_TARGET = 1.5
WARM_UP = 5
CLIENT_TIMEOUT_S = 60.0
START_MARGIN_S = 20.0  # the broadcast outlasts the measurement by this much (worker start-up, slow machine)
DRAIN_TIMEOUT_S = 600.0


async def inbound(
    bot: RunningBot, customers: Customers, rate: float, seconds: float, warm_up: bool = False
) -> list[Attempt]:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        if warm_up:  # the model's lazy parts, the pools
            for sender in customers.take(WARM_UP):
                await send(session, bot.webhook_url, sender, asyncio.get_running_loop().time())
        # A customer writes once per run: no turn waits for another's conversation lock.
        attempts, _ = await open_loop(
            session, [bot.webhook_url], customers.take(int(rate * seconds) + 1), rate, seconds
        )
    return attempts


def summary(name: str, attempts: list[Attempt]) -> dict[str, Any]:
    ok = [a.seconds for a in attempts if a.status == 200]
    latency = LatencySummary.of(ok) if ok else None
    result = {"run": name, "messages": len(attempts), "not_200": len(attempts) - len(ok)}
    if latency is not None:
        result |= {f"{k}_ms": round(getattr(latency, k) * 1000, 1) for k in ("p50", "p90", "p99", "max")}
    print(f"  {name}: {result}", file=sys.stderr, flush=True)
    return result


def templates(bot: RunningBot) -> list[float]:
    return [m["received_at"] for m in list(bot.graph.state.sent) if m["body"].get("type") == "template"]


def measure(bot: RunningBot, args: argparse.Namespace) -> dict[str, Any]:
    customers = Customers()
    count = int(args.rate * (args.duration + START_MARGIN_S) * 10 / 9)  # 10% opted out
    populate(bot.database_url, count)
    webhooks = StatusWebhooks(bot.webhook_url, APP_SECRET)
    bot.graph.state.status_webhooks = webhooks
    print(f"idle, {args.inbound_rate:g} inbound/s for {args.duration:g} s ...", file=sys.stderr)
    idle = asyncio.run(inbound(bot, customers, args.inbound_rate, args.duration, warm_up=True))
    command = [
        sys.executable, "-m", "bot", "broadcast", "--template", "promo_offer", "--language", "en_US",
        "--param", "20% off", "--id", "latency", "--rate", f"{args.rate:g}", "--workers", "1",
    ]  # fmt: skip
    print(f"broadcast to {count:,} customers at {args.rate:g}/s ...", file=sys.stderr)
    load_before = os.getloadavg()
    broadcast = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=bot.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        while not templates(bot):
            if broadcast.poll() is not None:
                raise RuntimeError(f"the broadcast exited {broadcast.returncode} before sending")
            time.sleep(0.1)
        time.sleep(2.0)  # past the first burst: the steady rate
        window_start = time.time()
        during = asyncio.run(inbound(bot, customers, args.inbound_rate, args.duration))
        window_end = time.time()
        statuses_during = dict(webhooks.answers)
        broadcast.wait(timeout=600)
    finally:
        if broadcast.poll() is None:
            broadcast.kill()
    load_during = os.getloadavg()
    sent_in_window = sum(1 for t in templates(bot) if window_start <= t <= window_end)
    drain_started = time.monotonic()
    while sum(webhooks.answers.values()) < 3 * len(bot.graph.state.sent):
        if time.monotonic() - drain_started > DRAIN_TIMEOUT_S:
            raise RuntimeError("the bot did not answer the status webhooks in time")
        time.sleep(0.5)
    drained_s = time.monotonic() - drain_started
    print("idle again ...", file=sys.stderr)
    after = asyncio.run(inbound(bot, customers, args.inbound_rate, args.duration))
    runs = [summary("idle", idle), summary("during broadcast", during), summary("idle after", after)]
    idle_ok = [a.seconds for a in idle if a.status == 200]
    during_ok = [a.seconds for a in during if a.status == 200]
    idle_p50 = LatencySummary.of(idle_ok).p50
    during_p50 = LatencySummary.of(during_ok).p50
    ratio = during_p50 / idle_p50
    return {
        "date": datetime.now(timezone.utc).isoformat(),
        "rate": args.rate,
        "inbound_rate": args.inbound_rate,
        "duration_s": args.duration,
        "runs": runs,
        "broadcast_messages_per_second_during": round(sent_in_window / (window_end - window_start), 1),
        "status_webhook_answers_during": statuses_during,
        "status_webhook_answers": dict(webhooks.answers),
        "status_backlog_drained_s_after_the_broadcast": round(drained_s, 1),
        "idle_p50_ms": round(idle_p50 * 1000, 1),
        "during_p50_ms": round(during_p50 * 1000, 1),
        "ratio": round(ratio, 2),
        "met": ratio <= RATIO_TARGET,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_during],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--rate", type=float, default=80.0, help="the broadcast's messages/s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per measurement")
    parser.add_argument("--inbound-rate", type=float, default=2.0, help="customer messages/s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with bot_in_scratch("bench-broadcast-latency-", model=args.model.resolve()) as bot:
        result = measure(bot, args)
    print(
        f"idle median {result['idle_p50_ms']} ms, during the {args.rate:g}/s broadcast"
        f" ({result['broadcast_messages_per_second_during']} messages/s measured, status webhooks"
        f" {result['status_webhook_answers_during']}) {result['during_p50_ms']} ms: x{result['ratio']}"
    )
    print(f"{'met   ' if result['met'] else 'MISSED'}  median during the broadcast <= {RATIO_TARGET}x idle")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
