"""Where a Rasa turn's CPU goes: py-spy samples the Rasa server while customers go through the opt-out flow.

Run from the project root (`make bench-turn` does):

    .venv/bin/python -m bench.turn_profile --model models/current.tar.gz [--customers 40] [--json FILE]

One action server and one Rasa server (`tests.rasa_servers.start_bot`, fake Graph API on loopback).
Each customer writes "hello" (NLU, policies, no custom action), "STOP" (action_check_opt_out and
the confirmation form) and taps "Yes" (the form's validation and action_opt_out): three signed
webhooks, one after the other, several customers at a time. After a warm-up, py-spy samples the
Rasa process's Python threads while they run on the CPU (`--nonblocking`: the process is never
paused); /proc gives both servers' CPU time, so the table reads as CPU milliseconds per turn.

A sample is put in the first of these groups, in this order, that one of its frames belongs to;
so featurizers called by a policy count as featurizers and a tracker serialised for the store as
tracker store. The order is the table's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.results import write_json
from bench.stats import cpu_seconds
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER, sign
from tests.rasa_servers import APP_SECRET, RunningBot, bot_in_scratch

# (group, path fragments of its frames): the first group any frame of a sample matches wins.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("action-result schema validation", ("jsonschema/",)),
    ("lock store", ("rasa/core/lock_store.py", "rasa/core/lock.py")),
    ("tracker store (load, save, serialise)", ("rasa/core/tracker_store.py", "bot/rasa_stores.py")),
    ("policy featurizers", ("rasa/core/featurizers/",)),
    ("policies (Memoization, Rule, TED)", ("rasa/core/policies/",)),
    ("NLU (tokenizer, featurizers, DIET, fallback)", ("rasa/nlu/",)),
    ("actions (action server call, forms, responses)", ("rasa/core/actions/", "rasa/core/nlg/")),
    ("rest of Rasa's turn (processor, graph, tracker)", ("rasa/core/", "rasa/engine/", "rasa/shared/")),
    ("our code (WhatsApp channel, customer store)", ("bot/",)),
)
OTHER = "other (Sanic, aiohttp, event loop, JSON)"
# py-spy cannot tell waiting threads from running ones in this container (it counted the idle
# thread-pool workers and the event loop's poll as active): samples whose innermost frame is one
# of these waits are dropped.
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:", "serve (sanic/server/runners.py:", "(selectors.py:")
FLOW = ("hello", "STOP", "yes-button")
WARM_UP_CUSTOMERS = 2


def group_of(stack: Sequence[str]) -> str:
    for group, fragments in GROUPS:
        if any(fragment in frame for frame in stack for fragment in fragments):
            return group
    return OTHER


def read_raw(path: Path) -> Counter[str]:
    """py-spy's `--format raw` (collapsed stacks: `frame;frame;... count`) -> samples per group."""
    samples: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if stack and count.isdigit() and not any(idle in frames[-1] for idle in IDLE_LEAVES):
            samples[group_of(frames)] += int(count)
    return samples


async def post(session: aiohttp.ClientSession, bot: RunningBot, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = {HEADER: sign(body, APP_SECRET), "Content-Type": "application/json"}
    async with session.post(bot.webhook_url, data=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"webhook answered {response.status}")


async def conversation(session: aiohttp.ClientSession, bot: RunningBot, wa_id: str) -> None:
    await post(session, bot, meta.text(wa_id, "hello"))
    await post(session, bot, meta.text(wa_id, "STOP"))
    await post(session, bot, meta.button_reply(wa_id, "/affirm", "Yes, stop them"))
    # The flow really ran: the last reply is utter_opted_out (whose text says "Done").
    last = bot.sent_to(wa_id)[-1]
    if not last.get("text", {}).get("body", "").startswith("Done"):
        raise RuntimeError(f"{wa_id}: not opted out, last reply {last}")


async def conversations(bot: RunningBot, wa_ids: list[str], concurrency: int) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for wa_id in wa_ids:
        queue.put_nowait(wa_id)

    async def customer_after_customer() -> None:
        while not queue.empty():
            await conversation(session, bot, queue.get_nowait())

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(customer_after_customer() for _ in range(concurrency)))


def profile(bot: RunningBot, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    asyncio.run(conversations(bot, [f"1555000{i:04d}" for i in range(WARM_UP_CUSTOMERS)], 1))
    wa_ids = [f"1555100{i:04d}" for i in range(args.customers)]
    raw = args.raw or workdir / "rasa.pyspy.txt"
    spy = subprocess.Popen(
        [args.py_spy, "record", "--pid", str(bot.processes["rasa"].pid), "--rate", str(args.rate),
         "--format", "raw", "--nonblocking", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    pids = {name: process.pid for name, process in bot.processes.items()}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    seconds = asyncio.run(_timed(conversations(bot, wa_ids, args.concurrency)))
    cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    spy.send_signal(signal.SIGINT)
    _, errors = spy.communicate(timeout=120)
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote nothing: {errors.decode()[-2000:]}")
    turns = len(wa_ids) * len(FLOW)
    samples = read_raw(raw)
    rasa_ms = (cpu_after["rasa"] - cpu_before["rasa"]) * 1000 / turns
    total = sum(samples.values())
    return {
        "customers": len(wa_ids),
        "turns": turns,
        "seconds": seconds,
        "turns_per_s": turns / seconds,
        "rasa_cpu_ms_per_turn": rasa_ms,
        "action_server_cpu_ms_per_turn": (cpu_after["actions"] - cpu_before["actions"]) * 1000 / turns,
        "samples": total,
        "groups": {
            group: {"share": samples[group] / total, "cpu_ms_per_turn": rasa_ms * samples[group] / total}
            for group in [g for g, _ in GROUPS] + [OTHER]
        },
    }


async def _timed(work: Any) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await work
    return loop.time() - started


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['customers']} customers x {len(FLOW)} turns ({', '.join(FLOW)}) in {result['seconds']:.1f} s"
        f" = {result['turns_per_s']:.1f} turns/s; Rasa {result['rasa_cpu_ms_per_turn']:.1f} ms CPU/turn,"
        f" action server {result['action_server_cpu_ms_per_turn']:.1f} ms CPU/turn;"
        f" {result['samples']} py-spy samples; every customer opted out",
        "",
        f"| {'where the Rasa server spends a turn':<50} | share | ms CPU/turn |",
        f"|{'-' * 52}|------:|------------:|",
    ]
    for group, numbers in result["groups"].items():
        lines.append(f"| {group:<50} | {numbers['share']:>5.0%} | {numbers['cpu_ms_per_turn']:>11.1f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="trained model, e.g. models/current.tar.gz")
    parser.add_argument("--customers", type=int, default=40, help="customers through the flow while sampled")
    parser.add_argument("--concurrency", type=int, default=4, help="customers at a time")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--py-spy", default=shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks in this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with bot_in_scratch("turn-profile-", model=args.model) as bot:
        result = profile(bot, args, bot.workdir)
    print(table(result))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
