"""Broadcast send throughput: `python -m bot broadcast` with its workers against the Graph API stand-in.

Run from the project root (`make bench-send` does; no Rasa needed):

    .venv/bin/python -m bench.broadcast_send [--customers 20000] [--rate-customers 4000] [--json FILE]

Each run gets a fresh SQLite database with N customers, 10% of them opted out (OPT_OUT tags, the
consent triggers firing on every row), and the stand-in (`python -m bot.fake_graph_api`) in its
own process on loopback. The command runs as in production, in a subprocess; once a tenth of
the messages has gone out, 1% of the customers opt out (through `bot.store.tags.record_opt_out`,
what the webhook and the opt-out link call), spread over the second half of the send order.

Runs: `--rate unlimited` with 1 worker and with 2 workers (N customers), then `--rate 80` with 2
workers (`--rate-customers`, enough for a minute at 80/s). Reported per run: messages/s between
the first and the last template at the stand-in, the command's wall time, messages that reached
an opted-out customer (before the run, or after their opt-out was committed), the CPU seconds
per message of the command (its workers included) and of the stand-in, and the load average. Targets: at least 500 messages/s unlimited; the rate-limited run within 5% of 80/s;
zero to opted-out customers. Reported as met / MISSED; the exit code is 0 whenever it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.stats import cpu_seconds
from bot import PROJECT_ROOT

FIRST_NUMBER = 4915300000000
OPTED_OUT_SHARE = 10  # one customer in 10
LATE_SHARE = 100  # one in 100 opts out during the run
TOKEN = "bench-access-token"
PHONE_NUMBER_ID = "106540352242922"
UNLIMITED_TARGET = 500.0
RATE = 80.0
RATE_TOLERANCE = 0.05


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def populate(url: str, count: int) -> list[str]:
    """`count` customers with a phone number each, every OPTED_OUT_SHARE-th opted out."""
    from bot.db import engine_for
    from bot.migrations import upgrade
    from bot.schema import customer_identities, customers, tags

    upgrade(url)
    at = datetime.now(timezone.utc)
    numbers = [str(FIRST_NUMBER + i) for i in range(1, count + 1)]
    with engine_for(url).begin() as conn:
        conn.execute(insert(customers), [{"id": i, "key": f"c_bench{i:08d}"} for i in range(1, count + 1)])
        conn.execute(
            insert(customer_identities),
            [
                {
                    "customer_id": i,
                    "kind": "phone",
                    "value": number,
                    "status": "active",
                    "evidence": "import",
                    "first_seen_at": at,
                    "last_seen_at": at,
                }
                for i, number in enumerate(numbers, start=1)
            ],
        )
        conn.execute(
            insert(tags),
            [
                {"customer_id": i, "name": "OPT_OUT", "added_at": at, "source": "import"}
                for i in range(OPTED_OUT_SHARE, count + 1, OPTED_OUT_SHARE)
            ],
        )
    return numbers


def fake_api(port: int, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def one_run(workdir: Path, count: int, rate: str, workers: int) -> dict[str, Any]:
    from bot.db import engine_for
    from bot.store.tags import record_opt_out
    from bot.store.timestamps import now

    url = f"sqlite:///{workdir / f'bench-{rate}-{workers}.sqlite3'}"
    numbers = populate(url, count)
    opted_out = set(numbers[OPTED_OUT_SHARE - 1 :: OPTED_OUT_SHARE])
    sendable = [n for n in numbers if n not in opted_out]
    # 1% of all customers, spread evenly over the second half of the send order.
    second_half = sendable[len(sendable) // 2 :]
    late = second_half[:: max(1, len(second_half) // (count // LATE_SHARE))][: count // LATE_SHARE]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "WHATSAPP_ACCESS_TOKEN": TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_API_URL": f"http://127.0.0.1:{port}/v21.0",
        "OPT_OUT_LINK_SECRET": "bench-link-secret",
    }
    graph = subprocess.Popen(
        [sys.executable, "-m", "bot.fake_graph_api", "--port", str(port)], cwd=PROJECT_ROOT, env=env
    )
    opted_out_at: dict[str, float] = {}
    try:
        for _ in range(200):
            try:
                fake_api(port, "/_fake/count")
                break
            except OSError:
                time.sleep(0.1)

        def opt_out_during_the_run() -> None:
            while fake_api(port, "/_fake/count")["sent"] < len(sendable) // 10:
                time.sleep(0.02)
            engine = engine_for(url)
            for number in late:
                with engine.begin() as conn:
                    record_opt_out(conn, number, "meta_preferences", None, now())
                opted_out_at[number] = time.time()  # committed: nothing may reach them after this

        opting_out = threading.Thread(target=opt_out_during_the_run, daemon=True)
        opting_out.start()
        command = [
            sys.executable, "-m", "bot", "broadcast", "--template", "promo_offer", "--language", "en_US",
            "--param", "20% off", "--id", "bench", "--rate", rate, "--workers", str(workers),
        ]  # fmt: skip
        print(
            f"--rate {rate} --workers {workers}: {count:,} customers, {len(opted_out):,} opted out,"
            f" {len(late)} opting out during the run ...",
            flush=True,
        )
        load_before = os.getloadavg()
        # The command's CPU, its worker processes included (they are waited for, so their usage
        # rolls up into ours), and the stand-in's: CPU per message holds on a loaded machine.
        children_cpu = _children_cpu()
        stand_in_cpu = cpu_seconds(graph.pid)
        started = time.monotonic()
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        command_cpu = _children_cpu() - children_cpu
        stand_in_cpu = cpu_seconds(graph.pid) - stand_in_cpu
        load_after = os.getloadavg()
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
        opting_out.join(timeout=120)
        sent = [m for m in fake_api(port, "/_fake/sent") if m["body"]["type"] == "template"]
    finally:
        graph.terminate()
        graph.wait(timeout=20)
    arrivals = sorted(m["received_at"] for m in sent)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    per_customer = Counter(m["body"]["to"] for m in sent)
    reached_opted_out = sum(
        1
        for m in sent
        if m["body"]["to"] in opted_out or m["received_at"] > opted_out_at.get(m["body"]["to"], float("inf"))
    )
    run = {
        "rate": rate,
        "workers": workers,
        "customers": count,
        "opted_out_before": len(opted_out),
        "opted_out_during": len(opted_out_at),
        "templates_sent": len(sent),
        "customers_reached_twice": sum(1 for n in per_customer.values() if n > 1),
        "messages_per_second": round((len(arrivals) - 1) / span, 1),
        "command_seconds": round(seconds, 1),
        "reached_opted_out": reached_opted_out,
        "command_cpu_ms_per_message": round(command_cpu * 1000 / max(1, len(sent)), 3),
        "stand_in_cpu_ms_per_message": round(stand_in_cpu * 1000 / max(1, len(sent)), 3),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "summary": result.stdout.strip().splitlines(),
    }
    print(
        f"  {len(sent):,} templates in {span:.1f} s: {run['messages_per_second']} messages/s"
        f" (command {seconds:.1f} s); to opted-out customers: {reached_opted_out};"
        f" twice: {run['customers_reached_twice']}; CPU ms/message: command (workers included)"
        f" {run['command_cpu_ms_per_message']}, stand-in {run['stand_in_cpu_ms_per_message']}; load {run['load_average_before']} -> {run['load_average_after']}",
        flush=True,
    )
    return run


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate-customers", type=int, default=4_000, help="for the --rate 80 run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-broadcast-send-") as scratch:
        workdir = Path(scratch)
        runs.append(one_run(workdir, args.customers, "unlimited", 1))
        runs.append(one_run(workdir, args.customers, "unlimited", 2))
        runs.append(one_run(workdir, args.rate_customers, f"{RATE:g}", 2))
    unlimited = [r for r in runs if r["rate"] == "unlimited"]
    limited = runs[-1]
    verdicts = [
        (
            f"at least {UNLIMITED_TARGET:g} messages/s unlimited (best of 1 and 2 workers)",
            max(r["messages_per_second"] for r in unlimited) >= UNLIMITED_TARGET,
        ),
        (
            f"--rate {RATE:g} achieved within {RATE_TOLERANCE:.0%}",
            abs(limited["messages_per_second"] - RATE) <= RATE * RATE_TOLERANCE,
        ),
        ("zero messages to opted-out customers", all(r["reached_opted_out"] == 0 for r in runs)),
        ("nobody reached twice", all(r["customers_reached_twice"] == 0 for r in runs)),
    ]
    for name, met in verdicts:
        print(f"{'met   ' if met else 'MISSED'}  {name}")
    print("TARGETS MET" if all(met for _, met in verdicts) else "TARGETS MISSED")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"date": datetime.now(timezone.utc).isoformat(), "runs": runs}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
