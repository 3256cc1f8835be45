"""Webhooks through a whole publish: signed messages at a steady rate while `python -m bot publish`
trains, checks and loads a new model into the running Rasa replicas, one at a time.

`tests/test_publish.py` runs it against real servers (one replica, then two behind a round-robin)
and writes the numbers to results/publish_load.json. Every message is "hello" (one reply each); a
message is lost when it is not answered 200 or the fake Graph API got no reply for it. Latency is the
webhook's answer time from when the message was due; "during the swap" means the messages due while
a replica was loading the new model (from its `PUT /model` to its `GET /status` saying so).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.stats import Attempt, losses, percentile
from bot.whatsapp import meta_payloads as meta
from bot.whatsapp.signature import HEADER, sign

MESSAGE = "hello"
CLIENT_TIMEOUT_S = 120.0


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


async def webhooks_while(
    command: Sequence[str],
    env: dict[str, str],
    cwd: str,
    urls: Sequence[str],
    senders: Sequence[str],
    secret: str,
    rate: float,
    tail_s: float = 2.0,
) -> tuple[int, str, list[Timed]]:
    """Run `command` while sending `rate` webhooks a second (open loop, round robin over `urls`)
    from its start until `tail_s` after it ended; (its exit code, its output, every message)."""
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
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        await asyncio.sleep(tail_s)
        stop.set()
        timed = await sending
    return process.returncode or 0, output.decode(errors="replace"), timed
