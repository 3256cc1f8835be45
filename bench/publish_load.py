"""Webhooks through a whole publish: signed messages at a steady rate while `python -m bot publish`
validates, trains, checks, evaluates and loads a new model into the running Rasa replicas.

Run from the project root (`make bench-publish` does, after `make train`):

    .venv/bin/python -m bench.publish_load [--model models/current.tar.gz | --cheap] [--rate 6] [--json FILE]

A throwaway PostgreSQL (conversations, customers, dedupe) and Redis (per-conversation locks), one
action server and two Rasa servers on them (`tests.rasa_servers`), all on loopback, started on
`--model`. The publishes work on a copy of the project (config, domain, data, test stories) and of
its component cache (.rasa/cache, which `make train` filled), so that they train what a designer's
publish would train. `--cheap` instead trains the bot's first model here, from a copy with DIET
at CHEAP_DIET_EPOCHS (as tests/test_publish.py does) and its own cache:
minutes instead of `make train`'s ten, the same model size and the same publish steps. Two publishes, each after editing `utter_greet` in the copy (what the issue's
"Done when" edits):
1. one replica: `--rasa-url` A, every webhook to A;
2. two replicas: `--rasa-url` A and B (loaded one after the other), webhooks alternately to A and B
   (the round robin a balancer does).
From the moment the publish starts until TAIL_S after it ended, "hello" webhooks signed as Meta
signs them arrive at `--rate` a second whatever the answers do (open loop). A message is lost when
it is not answered 200, or the fake Graph API got no reply for it. "During the swap": the messages
due while a replica was loading the new model (from its `PUT /model` until `GET /status` reported
it). After each publish the bot must greet with the edited text (on every replica published to).

Printed per publish: its exit code and duration, webhooks sent, answered 200, non-200, without a
reply, sent during the swaps, latency. Exit code 1 when a publish failed, a message was lost or the
edited text was not said. `tests/test_publish.py` uses the same sending (`webhooks_while`) for its
one publish.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.stats import Attempt, losses, percentile
from bot import PROJECT_ROOT
from bot.publish.steps import QUIET
from bot.settings import child_environment
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER, sign

MESSAGE = "hello"
CLIENT_TIMEOUT_S = 120.0
TAIL_S = 2.0  # webhooks go on this long after the publish ended
SENDERS_PER_RUN = 30
# What a publish trains from, and Rasa's component cache (relative to the project it trains).
PROJECT_FILES = ("config.yml", "domain.yml", "endpoints.yml", "data", "tests/stories")
CACHE = Path(".rasa", "cache")
# --cheap and tests/test_publish.py: the copy's DIET epochs (the project's: 40). The test stories
# do not depend on them: rules and memoization decide every step.
CHEAP_DIET_EPOCHS = 5


# --- the numbers (pure) ---


@dataclass(frozen=True)
class Timed:
    attempt: Attempt
    due: float  # unix time the message was due


def during(timed: Sequence[Timed], windows: Sequence[tuple[float, float]]) -> list[Timed]:
    """The messages due inside any of the (start, end) windows, in unix time."""
    return [t for t in timed if any(start <= t.due <= end for start, end in windows)]


def latency_ms(timed: Sequence[Timed]) -> dict[str, float] | None:
    seconds = [t.attempt.seconds for t in timed if t.attempt.status == 200]
    if not seconds:
        return None
    return {
        "p50": round(percentile(seconds, 50) * 1000),
        "p95": round(percentile(seconds, 95) * 1000),
        "max": round(max(seconds) * 1000),
    }


def summary(
    timed: Sequence[Timed], replies_by_sender: dict[str, int], windows: Sequence[tuple[float, float]]
) -> dict[str, Any]:
    attempts = [t.attempt for t in timed]
    lost = losses(attempts, replies_by_sender)
    span = max(t.due for t in timed) - min(t.due for t in timed) if timed else 0.0
    swapping = during(timed, windows)
    return {
        "sent": len(timed),
        "rate_per_s": round((len(timed) - 1) / span, 2) if span else None,
        "seconds": round(span, 1),
        "non_200": lost.non_200,
        "unanswered": lost.missing_replies,
        "answered_200": len(attempts) - lost.non_200,
        "replied": len(attempts) - lost.non_200 - lost.missing_replies,
        "latency_ms": latency_ms(timed),
        "during_swap": {"sent": len(swapping), "latency_ms": latency_ms(swapping)},
        "swap_windows_s": [round(end - start, 2) for start, end in windows],
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        f"{'publish':<13} {'exit':>4} {'publish s':>9} {'sent':>5} {'rate/s':>6} {'200':>5} "
        f"{'non-200':>7} {'no reply':>8} {'in swap':>7} {'swaps s':>13} {'p50 ms':>6} {'p95 ms':>6} "
        f"{'max ms':>7} {'said':>4}"
    )
    lines = [header]
    for row in rows:
        latency = row["latency_ms"] or {"p50": "-", "p95": "-", "max": "-"}
        swaps = "/".join(f"{s:.1f}" for s in row["swap_windows_s"]) or "-"
        lines.append(
            f"{row['label']:<13} {row['exit_code']:>4} {row['publish_s']:>9.0f} {row['sent']:>5} "
            f"{row['rate_per_s'] or 0:>6.2f} {row['answered_200']:>5} {row['non_200']:>7} "
            f"{row['unanswered']:>8} {row['during_swap']['sent']:>7} {swaps:>13} {latency['p50']:>6} "
            f"{latency['p95']:>6} {latency['max']:>7} {'yes' if row['edit_said'] else 'NO':>4}"
        )
    return "\n".join(lines)


# --- the project copy a publish trains from ---


def copy_project(target: Path, *, cache: bool = True) -> Path:
    """The files a publish trains and tests from, and (`cache`) the component cache `make train`
    filled."""
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    if cache and (PROJECT_ROOT / CACHE).is_dir():  # absent, the first publish trains every component
        shutil.copytree(PROJECT_ROOT / CACHE, target / CACHE)
    return target


def set_response(project: Path, response: str, text: str) -> None:
    """Replace the first (unconditional) text of a response in domain.yml, as a designer would."""
    domain = project / "domain.yml"
    lines = domain.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith(f"  {response}:"))
    if not lines[at + 1].startswith("    - text: "):
        raise ValueError(f"{response}'s first line is not a text: {lines[at + 1]!r}")
    lines[at + 1] = f'    - text: "{text}"\n'
    domain.write_text("".join(lines), encoding="utf-8")


def with_epochs(project: Path, *, diet: int) -> None:
    """The copy's config.yml with fewer DIET epochs; every other setting as the project has it."""
    config_file = project / "config.yml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    [diet_settings] = [c for c in config["pipeline"] if c["name"] == "DIETClassifier"]
    diet_settings["epochs"] = diet
    config_file.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")


def train(project: Path, out: Path, cache: Path) -> Path:
    """A first model for the bot, trained from `project` as `make train` trains, storing its
    components in `cache` (RASA_CACHE_DIRECTORY) for the publishes to restore."""
    # --skip-validation: the same files as the project's, which `make validate` and every publish check.
    command = [
        sys.executable, "-m", "rasa", "train", "--out", str(out), "--fixed-model-name", "initial",
        "--skip-validation",
    ]  # fmt: skip
    env = child_environment({**QUIET, "RASA_CACHE_DIRECTORY": str(cache)})
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=3000)
    if done.returncode != 0:
        raise RuntimeError(f"training failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return out / "initial.tar.gz"


# --- sending ---


async def _send(session: aiohttp.ClientSession, url: str, sender: str, secret: str, due: float) -> Timed:
    body = json.dumps(meta.text(sender, MESSAGE)).encode()  # a new wamid each time
    headers = {HEADER: sign(body, secret), "Content-Type": "application/json"}
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        status = 0
    return Timed(Attempt(sender=sender, status=status, seconds=time.time() - due), due)


@dataclass(frozen=True)
class Run:
    exit_code: int
    output: str
    seconds: float  # the command's wall time
    timed: list[Timed]


async def webhooks_while(
    command: Sequence[str],
    env: dict[str, str],
    cwd: str,
    urls: Sequence[str],
    senders: Sequence[str],
    secret: str,
    rate: float,
    tail_s: float = TAIL_S,
) -> Run:
    """Run `command` while sending `rate` webhooks a second (open loop, round robin over `urls`)
    from its start until `tail_s` after it ended."""
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)

    async def stream(session: aiohttp.ClientSession) -> list[Timed]:
        tasks = []
        start = time.time()
        for n in itertools.count():
            if stop.is_set():
                break
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.time()))
            url = urls[n % len(urls)]  # what a round-robin balancer does
            tasks.append(asyncio.create_task(_send(session, url, senders[n % len(senders)], secret, due)))
        return list(await asyncio.gather(*tasks))

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        sending = asyncio.create_task(stream(session))
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        seconds = time.monotonic() - started
        await asyncio.sleep(tail_s)
        stop.set()
        timed = await sending
    return Run(process.returncode or 0, output.decode(errors="replace"), seconds, timed)


# --- the benchmark ---


def release(n: int) -> str:
    return f"Release {n} says hello! Ask me about orders and offers. To stop marketing messages, write STOP."


def edit_release(project: Path, n: int) -> None:
    """Edit the greeting and the fallback answer, as a designer would: whichever of the two the
    (cheap) model answers "hello" with, it says which release it comes from."""
    set_response(project, "utter_greet", release(n))
    set_response(project, "utter_default", f"Release {n} did not get that. Write STOP to stop marketing.")


def of_release(answer: str, n: int) -> bool:
    return answer.startswith(f"Release {n} ")


def _measure(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    from bench.load import replies_by_sender
    from bot.publish.records import read_log
    from tests.e2e_checks import last_text
    from tests.rasa_servers import APP_SECRET, start_bot
    from tests.servers import postgres_server, redis_server

    project = copy_project(workdir / "project", cache=not args.cheap)
    models = workdir / "models"
    models.mkdir()
    env: dict[str, str] = {}
    if args.cheap:  # a first model trained here, with its own component cache, for the publishes
        with_epochs(project, diet=CHEAP_DIET_EPOCHS)
        env["RASA_CACHE_DIRECTORY"] = str(workdir / "rasa-cache")
        print("training the cheap copy's first model ...", file=sys.stderr)
        shutil.copy2(train(project, workdir / "initial", workdir / "rasa-cache"), models / "current.tar.gz")
    else:
        shutil.copy2(args.model, models / "current.tar.gz")
    rows = []
    with postgres_server() as postgres, redis_server() as redis:
        database = postgres.create_database()
        for name in ("a", "b"):
            (workdir / name).mkdir()
        a = start_bot(
            workdir / "a",
            model=models / "current.tar.gz",
            database_url=database,
            tracker_store_url=database,
            redis_url=redis.url,
        )
        try:
            b = a.start_replica(workdir / "b")  # both run in both publishes: the same machine
            try:
                for n, (label, bots) in enumerate((("one replica", [a]), ("two replicas", [a, b])), 1):
                    edit_release(project, n)
                    command = [
                        sys.executable, "-m", "bot", "publish", "--project", str(project),
                        "--models-dir", str(models), *(f"--rasa-url=http://127.0.0.1:{x.rasa_port}" for x in bots),
                    ]  # fmt: skip
                    senders = [str(4917000000000 + n * 1000 + s) for s in range(SENDERS_PER_RUN)]
                    print(f"publishing to {label} with webhooks at {args.rate}/s ...", file=sys.stderr)
                    run = asyncio.run(
                        webhooks_while(
                            command, {**a.env, **env}, str(PROJECT_ROOT), [x.webhook_url for x in bots], senders,
                            APP_SECRET, args.rate,
                        )
                    )  # fmt: skip
                    print(run.output, file=sys.stderr)
                    windows = []
                    if run.exit_code == 0:  # the publication names each replica's load
                        published = read_log(models / "published" / "publications.jsonl")[-1]
                        windows = [(r.started_at, r.started_at + r.seconds) for r in published.replicas]
                    said = []
                    for x in bots:
                        wa_id = f"49170099{n}{x.rasa_port}"
                        said.append(last_text(x, wa_id) if x.post(meta.text(wa_id, MESSAGE)) == 200 else None)
                    replies = replies_by_sender(a)
                    rows.append(
                        {
                            "label": label,
                            "exit_code": run.exit_code,
                            "publish_s": round(run.seconds, 1),
                            "edit_said": all(answer is not None and of_release(answer, n) for answer in said),
                            "said": said,
                            **summary(run.timed, replies, windows),
                        }
                    )
                    print(table(rows[-1:]), file=sys.stderr)  # each publish's numbers as soon as it ended
                    if not rows[-1]["edit_said"]:
                        print(f"the replicas answered 'hello' with: {said}", file=sys.stderr)
            finally:
                b.stop()
        finally:
            a.stop()
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=PROJECT_ROOT / "models" / "current.tar.gz",
        help="the model the bot starts on (default: models/current.tar.gz, from `make train`)",
    )
    parser.add_argument(
        "--cheap",
        action="store_true",
        help=f"train the bot's first model here from a copy with DIET at {CHEAP_DIET_EPOCHS} epochs "
        "(minutes, not `make train`'s ten); --model is then not used",
    )
    parser.add_argument(
        "--rate", type=float, default=6.0, help="webhooks a second (the issue asks at least 5)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.cheap and not args.model.is_file():
        print(f"{args.model} is missing: run `make train`", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    try:
        rows = _measure(args, workdir)
    except BaseException:
        print(f"server logs and publish logs kept in {workdir}", file=sys.stderr)
        raise
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    failed = [
        row["label"]
        for row in rows
        if row["exit_code"] != 0 or row["non_200"] or row["unanswered"] or not row["edit_said"]
    ]
    if failed:
        print(f"FAILED: {', '.join(failed)}; logs kept in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
