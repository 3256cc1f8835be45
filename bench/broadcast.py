"""Broadcast benchmark: audience selection over a million customers, and sending through Rasa.

Run from the project root (the second part needs the trained model, `make train`):

    .venv/bin/python -m bench.broadcast [--customers 1000000] [--send-customers 2000]
                                        [--rate 1000] [--concurrency 16] [--json FILE]

1. Selection. A scratch SQLite database gets N customers, 10% of them with an OPT_OUT tag (bulk
   inserts in one transaction; the consent triggers of migration 0002 still fire on every row).
   Each measurement runs in a child process whose peak RSS is read with os.wait4:
   - the selection query alone (count of audience / sendable / opted out);
   - `python -m bot broadcast --dry-run`, everyone and with a CSV of all N numbers (streamed);
   - materialising the pending deliveries (the INSERT ... SELECT of a real broadcast).
   Targets: the selection under 5 s and under 300 MB.
2. Sending. A real bot (action server + Rasa server + fake Graph API, tests/rasa_servers.py) with
   M customers, 10% opted out; `python -m bot broadcast` runs in a subprocess while about 20 more
   customers opt out through signed user_preferences webhooks. Reported: messages/s (first to last
   template at the fake Graph API) and the number of messages that reached a customer after they
   opted out. Targets: at least 80 messages/s; zero.

Targets are reported (TARGETS MET / MISSED); the exit code is 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT

SELECTION_SECONDS_TARGET = 5.0
SELECTION_MB_TARGET = 300.0
RATE_TARGET = 80.0
OPTED_OUT_SHARE = 10  # one customer in 10
LATE_OPT_OUTS = 20
FIRST_NUMBER = 4915200000000


@dataclass
class ChildRun:
    seconds: float
    peak_mb: float
    output: str


def run_child(argv: list[str], env: dict[str, str]) -> ChildRun:
    """Run a command; its wall time and its own peak RSS (os.wait4: this child's rusage only)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert child.stdout is not None
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {child.returncode}:\n{output[-3000:]}")
    return ChildRun(seconds, usage.ru_maxrss / 1024, output)  # ru_maxrss is in KiB on Linux


# --- 1. selection ---------------------------------------------------------------------------


def generate_customers(url: str, path: Path, count: int) -> float:
    """`count` customers, every OPTED_OUT_SHARE-th opted out; returns the seconds it took."""
    from bot.migrations import upgrade

    upgrade(url)
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")  # a scratch database: durability buys nothing here
    at = datetime(2025, 1, 1, tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    with conn:
        conn.executemany(
            "INSERT INTO customers (id, wa_id) VALUES (?, ?)",
            ((i, str(FIRST_NUMBER + i)) for i in range(1, count + 1)),
        )
        conn.executemany(
            "INSERT INTO tags (customer_id, name, added_at, source) VALUES (?, 'OPT_OUT', ?, 'import')",
            ((i, at) for i in range(OPTED_OUT_SHARE, count + 1, OPTED_OUT_SHARE)),
        )
    conn.close()
    return time.perf_counter() - started


def selection_child(url: str) -> None:
    """In the child: time the selection query alone; print it with the process's peak RSS."""
    from bot.broadcast.audience import Audience, count
    from bot.db import engine_for

    with engine_for(url).connect() as conn:
        started = time.perf_counter()
        selection = count(conn, Audience())
        seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, **asdict(selection)}))


def materialise_child(url: str) -> None:
    from bot.broadcast import deliveries
    from bot.broadcast.audience import Audience, count
    from bot.db import engine_for
    from bot.store.timestamps import now

    with engine_for(url).begin() as conn:
        started = time.perf_counter()
        selection = count(conn, Audience())
        deliveries.create(
            conn, "bench", "promo_offer", "en_US", ["x"], Audience(), 80.0, selection.audience, now()
        )
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds}))


def bench_selection(count: int, workdir: Path) -> dict[str, Any]:
    path = workdir / "selection.sqlite3"
    url = f"sqlite:///{path}"
    env = {**os.environ, "DATABASE_URL": url}
    print(f"generating {count:,} customers ({100 // OPTED_OUT_SHARE}% opted out) ...", flush=True)
    generated = generate_customers(url, path, count)
    print(f"  {generated:.1f} s", flush=True)
    me = [sys.executable, "-m", "bench.broadcast"]

    query = run_child([*me, "--selection-child", url], env)
    measured = json.loads(query.output.strip().splitlines()[-1])
    dry = [
        sys.executable,
        "-m",
        "bot",
        "broadcast",
        "--template",
        "promo_offer",
        "--language",
        "en_US",
        "--dry-run",
    ]
    cli = run_child(dry, env)
    csv_path = workdir / "audience.csv"
    with csv_path.open("w") as out:
        out.write("wa_id\n")
        out.writelines(f"{FIRST_NUMBER + i}\n" for i in range(1, count + 1))
    cli_csv = run_child([*dry, "--audience", str(csv_path)], env)
    materialise = run_child([*me, "--materialise-child", url], env)
    result = {
        "customers": count,
        "generate_seconds": round(generated, 2),
        "audience": measured["audience"],
        "would_send": measured["allowed"],
        "skipped_opted_out": measured["audience"] - measured["allowed"],
        "selection_query_seconds": round(measured["seconds"], 3),
        "selection_process_peak_mb": round(measured["peak_mb"], 1),
        "dry_run_cli_seconds": round(cli.seconds, 2),
        "dry_run_cli_peak_mb": round(cli.peak_mb, 1),
        "dry_run_csv_cli_seconds": round(cli_csv.seconds, 2),
        "dry_run_csv_cli_peak_mb": round(cli_csv.peak_mb, 1),
        "materialise_seconds": round(json.loads(materialise.output.strip().splitlines()[-1])["seconds"], 2),
        "materialise_peak_mb": round(materialise.peak_mb, 1),
    }
    print(
        f"  selection query: {result['selection_query_seconds']} s, process peak {result['selection_process_peak_mb']} MB"
    )
    print(
        f"  dry run (CLI, everyone): {result['dry_run_cli_seconds']} s, peak {result['dry_run_cli_peak_mb']} MB"
    )
    print(
        f"  dry run (CLI, {count:,}-line CSV): {result['dry_run_csv_cli_seconds']} s, peak {result['dry_run_csv_cli_peak_mb']} MB"
    )
    print(
        f"  materialise {measured['allowed']:,} deliveries: {result['materialise_seconds']} s, peak {result['materialise_peak_mb']} MB"
    )
    return result


# --- 2. sending through Rasa ----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TimedList(list):
    """The fake Graph API's record of sent messages, with the moment each one arrived."""

    def append(self, item: Any) -> None:
        item["arrived"] = time.monotonic()
        super().append(item)


@contextmanager
def running_bots(workdir: Path, replicas: int) -> Iterator[list[Any]]:
    """One bot on SQLite files; or, for replicas, Rasa servers sharing PostgreSQL and Redis."""
    from tests.rasa_servers import start_bot
    from tests.servers import postgres_server, redis_server

    with ExitStack() as stack:
        if replicas == 1:
            print("starting the bot (action server, Rasa, fake Graph API) ...", flush=True)
            bots = [start_bot(workdir)]
        else:
            print(f"starting {replicas} Rasa replicas on PostgreSQL and Redis ...", flush=True)
            url = stack.enter_context(postgres_server()).create_database()
            redis_url = stack.enter_context(redis_server()).database_url(1)
            bots = [start_bot(workdir, database_url=url, tracker_store_url=url, redis_url=redis_url)]
        for bot in bots:
            stack.callback(bot.stop)
        for i in range(1, replicas):
            (workdir / f"replica-{i}").mkdir()
            bots.append(bots[0].start_replica(workdir / f"replica-{i}"))
            stack.callback(bots[-1].stop)
        yield bots


def bench_sending(count: int, rate: float, concurrency: int, replicas: int, workdir: Path) -> dict[str, Any]:
    from bot.whatsapp import meta_payloads as meta

    with running_bots(workdir, replicas) as bots:
        bot = bots[0]
        bot.graph.state.sent = TimedList()
        numbers = [str(FIRST_NUMBER + i) for i in range(count)]
        opted_out = set(numbers[OPTED_OUT_SHARE - 1 :: OPTED_OUT_SHARE])
        csv_path = workdir / "customers.csv"
        csv_path.write_text(
            "wa_id,tags\n" + "".join(f"{n},BENCH{';OPT_OUT' if n in opted_out else ''}\n" for n in numbers)
        )
        imported = bot.cli("customers", "import", str(csv_path))
        assert imported.returncode == 0, imported.stderr
        # Customers late in the send order who opt out while it runs, spread over its second half.
        sendable = [n for n in numbers if n not in opted_out]
        step = max(1, len(sendable) // 2 // LATE_OPT_OUTS)
        late = sendable[len(sendable) // 2 :: step][:LATE_OPT_OUTS]
        opted_out_at: dict[str, float] = {}

        def opt_out_during_the_run() -> None:
            while len(bot.graph.state.sent) < len(sendable) // 10:
                time.sleep(0.02)
            for wa_id in late:
                assert bot.post(meta.marketing_preference(wa_id, "stop")) == 200
                opted_out_at[wa_id] = time.monotonic()  # the tag is committed before the 200
                time.sleep(0.05)

        opting_out = threading.Thread(target=opt_out_during_the_run, daemon=True)
        opting_out.start()
        argv = [
            sys.executable, "-m", "bot", "broadcast", "--template", "promo_offer", "--language", "en_US",
            "--param", "20% off", "--tag", "BENCH", "--id", "bench", "--rate", str(rate),
            "--concurrency", str(concurrency),
            *(option for replica in bots for option in ("--rasa-url", f"http://127.0.0.1:{replica.rasa_port}")),
        ]  # fmt: skip
        print(
            f"broadcasting to {count:,} customers ({len(opted_out)} opted out, {len(late)} opting out during it) ...",
            flush=True,
        )
        processes = {
            f"{name}{f'-{i}' if i else ''}": process.pid
            for i, replica in enumerate(bots)
            for name, process in replica.processes.items()
        }
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        load_before = os.getloadavg()[0]
        command = run_child(argv, bot.env)
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
        opting_out.join(timeout=60)
        templates = [m for m in bot.graph.state.sent if m["body"]["type"] == "template"]
        arrivals = sorted(m["arrived"] for m in templates)
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
        reached_opted_out = sum(
            1
            for m in templates
            if m["body"]["to"] in opted_out
            or (m["body"]["to"] in opted_out_at and m["arrived"] > opted_out_at[m["body"]["to"]])
        )
        result = {
            "customers": count,
            "opted_out_before": len(opted_out),
            "opted_out_during": len(opted_out_at),
            "rate_limit": rate,
            "rasa_replicas": replicas,
            "concurrency": concurrency,
            "templates_sent": len(templates),
            "messages_per_second": round((len(arrivals) - 1) / span, 1),
            "command_seconds": round(command.seconds, 1),
            "command_peak_mb": round(command.peak_mb, 1),
            "reached_opted_out": reached_opted_out,
            # CPU per broadcast message (sent or skipped) of each server: what bounds the rate
            "cpu_ms_per_message": {
                name: round(1000 * seconds / max(1, count - len(opted_out))) for name, seconds in cpu.items()
            },
            "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "summary": command.output.strip().splitlines()[-4:],
        }
        print(f"  {len(templates)} templates in {span:.1f} s: {result['messages_per_second']} messages/s")
        print(f"  messages that reached an opted-out customer: {reached_opted_out}")
        print(
            f"  CPU per message: {result['cpu_ms_per_message']} ms; load average {result['load_average_1min']}"
        )
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="for the selection")
    parser.add_argument("--send-customers", type=int, default=2_000, help="for the send (0: skip)")
    parser.add_argument("--rate", type=float, default=1000.0, help="the command's --rate for the send")
    parser.add_argument("--concurrency", type=int, default=16, help="the command's --concurrency")
    parser.add_argument(
        "--replicas", type=int, default=1, help="Rasa servers for the send (>1: on PostgreSQL and Redis)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--selection-child", help=argparse.SUPPRESS)
    parser.add_argument("--materialise-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.selection_child:
        selection_child(args.selection_child)
        return 0
    if args.materialise_child:
        materialise_child(args.materialise_child)
        return 0

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as scratch:
        workdir = Path(scratch)
        if args.customers:
            results["selection"] = bench_selection(args.customers, workdir)
        if args.send_customers:
            send_dir = workdir / "send"
            send_dir.mkdir()
            results["sending"] = bench_sending(
                args.send_customers, args.rate, args.concurrency, args.replicas, send_dir
            )
    verdicts = []
    if "selection" in results:
        selection = results["selection"]
        verdicts.append(
            ("selection under 5 s", selection["selection_query_seconds"] < SELECTION_SECONDS_TARGET)
        )
        verdicts.append(
            ("selection under 300 MB", selection["selection_process_peak_mb"] < SELECTION_MB_TARGET)
        )
    if "sending" in results:
        sending = results["sending"]
        verdicts.append(("at least 80 messages/s", sending["messages_per_second"] >= RATE_TARGET))
        verdicts.append(("zero messages to opted-out customers", sending["reached_opted_out"] == 0))
    for name, met in verdicts:
        print(f"{'met   ' if met else 'MISSED'}  {name}")
    print("TARGETS MET" if all(met for _, met in verdicts) else "TARGETS MISSED")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
