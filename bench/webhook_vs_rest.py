"""The WhatsApp channel against Rasa's REST channel: throughput and latency on the same bot.

Run from the project root (`make bench` does):

    .venv/bin/python -m bench.webhook_vs_rest --model models/current.tar.gz [--json FILE] [--duration S]

One action server and one Rasa server (`tests.rasa_servers.start_bot` with bench/credentials_rest.yml,
the fake Graph API on loopback) serve both channels with the same model. Every message is "hello"
(greet -> utter_greet, no custom action), so the difference between the channels is the channel
itself: signature check,
dedupe claim, customer sighting, the send to the Graph API, against Rasa's collecting output.

- Throughput, closed loop: `--clients` clients, each a customer of its own, send one message after
  another for `--duration` seconds per channel. A WhatsApp message counts when its webhook answered
  200 and its reply reached the fake Graph API; a REST message when it was answered 200 with a reply.
  Also the CPU time the servers spent per message, which other work on the machine hardly moves.
- Latency, open loop: `--rate` messages/s for `--latency-duration` seconds per channel; the answer
  time of each webhook (WhatsApp answers after the turn, so its reply has been sent by then).

Each measurement alternates the channels in segments of a few seconds (WhatsApp, REST, REST,
WhatsApp, ...), so that load from anything else on the machine weighs on both channels alike.

Exit code 0 when the benchmark ran and lost no message; the targets are reported ("TARGETS MET" /
"TARGETS MISSED"), not asserted, so the numbers can be archived on a bad day too.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bench.results import scratch_kept_on_failure, write_json
from bench.stats import (
    Attempt,
    LatencySummary,
    Losses,
    abba_schedule,
    losses,
    ms_per_message,
    per_second,
    ratio,
    targets,
)
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER, sign
from tests.rasa_servers import APP_SECRET, RunningBot, start_bot

# credentials.yml plus Rasa's REST channel, which the bot itself never serves.
CREDENTIALS = "bench/credentials_rest.yml"
MESSAGE = "hello"
WHATSAPP = "whatsapp"
REST = "rest"
CHANNELS = (WHATSAPP, REST)
SEGMENT_S = 5.0  # short enough to follow other work on the machine, long enough to reach steady state
# A customer's conversation grows with every turn and Rasa loads all of it each turn; moving to a
# new customer now and then keeps trackers alike whichever channel completes more messages.
TURNS_PER_CUSTOMER = 10
WARM_UP_ROUNDS = 3
CLIENT_TIMEOUT_S = 60.0


class Channel(Protocol):
    async def send(self, sender: str) -> int:
        """Send MESSAGE as this customer; the HTTP status of the answer."""
        ...

    def replies(self) -> dict[str, list[str]]:
        """The text of every reply each customer has received so far."""
        ...


class WhatsAppChannel:
    def __init__(self, bot: RunningBot, session: aiohttp.ClientSession) -> None:
        self.bot = bot
        self.session = session

    async def send(self, sender: str) -> int:
        # A new wamid every time (meta.text makes one), signed as Meta signs it.
        body = json.dumps(meta.text(sender, MESSAGE)).encode()
        headers = {HEADER: sign(body, APP_SECRET), "Content-Type": "application/json"}
        async with self.session.post(self.bot.webhook_url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    def replies(self) -> dict[str, list[str]]:
        replies: dict[str, list[str]] = defaultdict(list)
        # A copy: the fake Graph API appends from its own thread.
        for sent in list(self.bot.graph.state.sent):
            body = sent["body"]
            replies[str(body["to"])].append(body.get("text", {}).get("body", json.dumps(body)))
        return replies


class RestChannel:
    def __init__(self, bot: RunningBot, session: aiohttp.ClientSession) -> None:
        self.url = f"http://127.0.0.1:{bot.rasa_port}/webhooks/rest/webhook"
        self.session = session
        self._replies: dict[str, list[str]] = defaultdict(list)

    async def send(self, sender: str) -> int:
        async with self.session.post(self.url, json={"sender": sender, "message": MESSAGE}) as response:
            if response.status != 200:
                await response.read()
                return response.status
            # Rasa's REST channel answers 200 even when the turn failed, with no messages: a
            # missing reply is how a lost REST message shows.
            for answer in await response.json():
                self._replies[sender].append(str(answer.get("text", answer)))
            return response.status

    def replies(self) -> dict[str, list[str]]:
        return self._replies


class Senders:
    """Fresh customer ids for one channel; the channels' ranges never meet, so no conversation is shared."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._numbers = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self._numbers):08d}"


def server_cpu_seconds(bot: RunningBot) -> float | None:
    """CPU time the action server and Rasa have used so far; None without /proc (not Linux).

    Other work on the machine moves it far less than it moves messages/s (it only slows the CPU
    down a little, instead of taking it away), so the channels' difference in it is the better
    guide to what a channel itself costs.
    """
    total = 0.0
    for process in bot.processes.values():
        try:
            stat = Path(f"/proc/{process.pid}/stat").read_text()
        except OSError:
            return None
        # utime and stime are fields 14 and 15; the command name before them may contain spaces.
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def attempt(channel: Channel, sender: str, since: float) -> Attempt:
    try:
        status = await channel.send(sender)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        status = 0  # no answer at all: lost
    return Attempt(sender=sender, status=status, seconds=asyncio.get_running_loop().time() - since)


async def warm_up(channel: Channel, senders: Senders, clients: int) -> list[Attempt]:
    """Load the model's lazy parts and open the connection pools on every side."""
    loop = asyncio.get_running_loop()
    done: list[Attempt] = []
    for _ in range(WARM_UP_ROUNDS):
        done += await asyncio.gather(*(attempt(channel, senders.new(), loop.time()) for _ in range(clients)))
    return done


async def closed_loop(
    channel: Channel, senders: Senders, clients: int, seconds: float
) -> tuple[list[Attempt], float]:
    """Each client sends its next message as soon as the last is answered; also the time it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds

    async def client() -> list[Attempt]:
        done: list[Attempt] = []
        sender = senders.new()
        while loop.time() < deadline:
            if done and len(done) % TURNS_PER_CUSTOMER == 0:
                sender = senders.new()
            done.append(await attempt(channel, sender, loop.time()))
        return done

    per_client = await asyncio.gather(*(client() for _ in range(clients)))
    # Until the last answer, not the deadline: messages in flight at the deadline are counted.
    return [a for done in per_client for a in done], loop.time() - start


async def open_loop(channel: Channel, senders: Senders, rate: float, seconds: float) -> list[Attempt]:
    """Messages at a fixed rate whatever the answers do; each timed from when it was due.

    Timing from the due time, not from when the client got round to sending, keeps a slow moment
    from hiding itself by delaying the messages that would have measured it.
    """
    loop = asyncio.get_running_loop()
    # Each customer writes once a second, so their previous turn is normally over and Rasa's
    # per-conversation lock does not queue them.
    customers = [senders.new() for _ in range(max(1, round(rate)))]
    start = loop.time()
    tasks = []
    for n in range(round(rate * seconds)):
        due = start + n / rate
        await asyncio.sleep(due - loop.time())  # returns at once when already late
        tasks.append(asyncio.create_task(attempt(channel, customers[n % len(customers)], due)))
    return list(await asyncio.gather(*tasks))


@dataclass
class ChannelRun:
    warm_up: list[Attempt] = field(default_factory=list)
    throughput: list[Attempt] = field(default_factory=list)
    throughput_seconds: float = 0.0
    server_cpu_seconds: float | None = 0.0
    latency: list[Attempt] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=dict)


async def measure(bot: RunningBot, args: argparse.Namespace) -> dict[str, ChannelRun]:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    # No connection cap: the open loop must never wait for a free connection on the client side.
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        channels: dict[str, Channel] = {
            WHATSAPP: WhatsAppChannel(bot, session),
            REST: RestChannel(bot, session),
        }
        senders = {WHATSAPP: Senders("4917"), REST: Senders("4918")}
        runs = {name: ChannelRun() for name in CHANNELS}

        for name in CHANNELS:
            runs[name].warm_up = await warm_up(channels[name], senders[name], args.clients)
        check_same_reply(channels, runs)

        print(f"throughput: {args.clients} clients, {args.duration:g} s per channel", file=sys.stderr)
        for name, segment_s in abba_schedule(WHATSAPP, REST, args.duration, SEGMENT_S):
            cpu_before = server_cpu_seconds(bot)
            done, seconds = await closed_loop(channels[name], senders[name], args.clients, segment_s)
            cpu_after, cpu_so_far = server_cpu_seconds(bot), runs[name].server_cpu_seconds
            runs[name].throughput += done
            runs[name].throughput_seconds += seconds
            runs[name].server_cpu_seconds = (
                None
                if cpu_before is None or cpu_after is None or cpu_so_far is None
                else cpu_so_far + cpu_after - cpu_before
            )

        print(f"latency: {args.rate:g} msg/s, {args.latency_duration:g} s per channel", file=sys.stderr)
        for name, segment_s in abba_schedule(WHATSAPP, REST, args.latency_duration, SEGMENT_S):
            runs[name].latency += await open_loop(channels[name], senders[name], args.rate, segment_s)

        for name in CHANNELS:
            runs[name].replies = channels[name].replies()
        return runs


def check_same_reply(channels: dict[str, Channel], runs: dict[str, ChannelRun]) -> None:
    """Both channels must take the same cheap path (greet -> utter_greet) or the comparison is void."""
    texts: dict[str, set[str]] = {}
    for name in CHANNELS:
        replies = channels[name].replies()
        texts[name] = {text for a in runs[name].warm_up for text in replies.get(a.sender, [])}
    if len(texts[WHATSAPP]) != 1 or texts[WHATSAPP] != texts[REST]:
        raise RuntimeError(f"the channels did not answer {MESSAGE!r} with the same single reply: {texts}")


def report(runs: dict[str, ChannelRun], args: argparse.Namespace) -> dict[str, Any]:
    """Every number the benchmark prints and writes, from what the clients and servers recorded."""
    replies = {name: {sender: len(r) for sender, r in runs[name].replies.items()} for name in CHANNELS}
    lost: dict[str, Losses] = {
        name: losses(runs[name].warm_up + runs[name].throughput + runs[name].latency, replies[name])
        for name in CHANNELS
    }
    throughput = {}
    for name in CHANNELS:
        completed = len(runs[name].throughput) - losses(runs[name].throughput, replies[name]).total
        throughput[name] = {
            "messages": completed,
            "seconds": runs[name].throughput_seconds,
            "per_second": per_second(completed, runs[name].throughput_seconds),
            "server_cpu_ms_per_message": (
                None
                if runs[name].server_cpu_seconds is None
                else ms_per_message(runs[name].server_cpu_seconds, len(runs[name].throughput))
            ),
        }
    latency = {
        name: LatencySummary.of([a.seconds for a in runs[name].latency if a.status == 200])
        for name in CHANNELS
    }
    throughput_ratio = ratio(throughput[WHATSAPP]["per_second"], throughput[REST]["per_second"])
    met = targets(throughput_ratio, latency[WHATSAPP].p50)
    return {
        "model": str(args.model),
        "message": MESSAGE,
        "clients": args.clients,
        "duration_s": args.duration,
        "rate_per_s": args.rate,
        "latency_duration_s": args.latency_duration,
        "throughput": {**throughput, "ratio": throughput_ratio},
        "latency_ms": {
            name: {
                "count": summary.count,
                **{q: getattr(summary, q) * 1000 for q in ("p50", "p90", "p99", "max")},
            }
            for name, summary in latency.items()
        },
        "lost": {
            name: {"non_200": loss.non_200, "missing_replies": loss.missing_replies, "total": loss.total}
            for name, loss in lost.items()
        },
        "targets": met,
        "targets_met": all(met.values()),
    }


def table(result: dict[str, Any]) -> str:
    throughput, latency, lost = result["throughput"], result["latency_ms"], result["lost"]
    rows = [
        ("", WHATSAPP, REST),
        (
            f"throughput, {result['clients']} clients (msg/s)",
            f"{throughput[WHATSAPP]['per_second']:.1f}",
            f"{throughput[REST]['per_second']:.1f}",
        ),
        (
            "  messages completed",
            str(throughput[WHATSAPP]["messages"]),
            str(throughput[REST]["messages"]),
        ),
        (
            "  server CPU per message (ms)",
            *(_ms(throughput[c]["server_cpu_ms_per_message"]) for c in CHANNELS),
        ),
        *(
            (
                f"latency at {result['rate_per_s']:g} msg/s, {q} (ms)",
                *(f"{latency[c][q]:.0f}" for c in CHANNELS),
            )
            for q in ("p50", "p90", "p99", "max")
        ),
        ("  messages timed", *(str(latency[c]["count"]) for c in CHANNELS)),
        (
            "lost (non-200 / no reply)",
            *(f"{lost[c]['non_200']} / {lost[c]['missing_replies']}" for c in CHANNELS),
        ),
    ]
    lines = [f"{label:<36}{a:>12}{b:>12}" for label, a, b in rows]
    lines.append(f"{'throughput ratio whatsapp/rest':<36}{throughput['ratio']:>12.2f}")
    lines.append("")
    lines += [f"{'met' if ok else 'MISSED':<8}{name}" for name, ok in result["targets"].items()]
    lines.append("TARGETS MET" if result["targets_met"] else "TARGETS MISSED")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="trained model, e.g. models/current.tar.gz")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--duration", type=float, default=20.0, help="throughput seconds per channel")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for throughput")
    parser.add_argument("--rate", type=float, default=20.0, help="open-loop messages per second")
    parser.add_argument("--latency-duration", type=float, default=24.0, help="latency seconds per channel")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, ChannelRun]:
    """Measure against a freshly started bot; the servers' logs are kept when anything fails."""
    print(f"starting the action server and Rasa with {args.model} ...", file=sys.stderr)
    with scratch_kept_on_failure("bench-webhook-vs-rest-") as workdir:
        bot = start_bot(workdir, model=args.model.resolve(), credentials=CREDENTIALS)
        try:
            runs = asyncio.run(measure(bot, args))
        finally:
            bot.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = report(run(args), args)
    print(table(result))
    write_json(args.json, result)
    lost = sum(result["lost"][name]["total"] for name in CHANNELS)
    if lost:
        print(f"{lost} messages lost", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
