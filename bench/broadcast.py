"""Broadcast benchmark: audience selection over a million customers.

Run from the project root:

    .venv/bin/python -m bench.broadcast [--customers 1000000] [--json FILE]

1. Selection. A scratch SQLite database gets N customers, 10% of them with an OPT_OUT tag (bulk
   inserts in one transaction; the consent triggers of migration 0002 still fire on every row).
   Each measurement runs in a child process whose peak RSS is read with os.wait4:
   - the selection query alone (count of audience / sendable / opted out);
   - `python -m bot broadcast --dry-run`, everyone and with a CSV of all N numbers (streamed);
   - materialising the pending deliveries (the INSERT ... SELECT of a real broadcast).
   Targets: the selection under 5 s and under 300 MB.
Sending is measured by bench/broadcast_send.py (the workers against the Graph API stand-in).

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
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.results import write_json
from bot import PROJECT_ROOT

SELECTION_SECONDS_TARGET = 5.0
SELECTION_MB_TARGET = 300.0
OPTED_OUT_SHARE = 10  # one customer in 10
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="for the selection")
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
    verdicts = []
    if "selection" in results:
        selection = results["selection"]
        verdicts.append(
            ("selection under 5 s", selection["selection_query_seconds"] < SELECTION_SECONDS_TARGET)
        )
        verdicts.append(
            ("selection under 300 MB", selection["selection_process_peak_mb"] < SELECTION_MB_TARGET)
        )
    for name, met in verdicts:
        print(f"{'met   ' if met else 'MISSED'}  {name}")
    print("TARGETS MET" if all(met for _, met in verdicts) else "TARGETS MISSED")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
