"""The arithmetic of `bench.webhook_vs_rest`: percentiles, throughput, losses and the targets.

Pure functions with no I/O, so `tests/test_bench_stats.py` checks them without starting a bot.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RATIO_TARGET = 0.9  # WhatsApp throughput / REST throughput must be at least this
MEDIAN_TARGET_S = 0.250  # WhatsApp webhook answer time at the median must stay below this


@dataclass(frozen=True)
class Attempt:
    """One message a load client sent: to whom, what HTTP status came back (0: no answer), how long."""

    sender: str
    status: int
    seconds: float


@dataclass(frozen=True)
class Losses:
    non_200: int  # refused, failed or never answered
    missing_replies: int  # answered 200 but the customer got no reply

    @property
    def total(self) -> int:
        return self.non_200 + self.missing_replies


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        return cls(
            count=len(seconds),
            p50=percentile(seconds, 50),
            p90=percentile(seconds, 90),
            p99=percentile(seconds, 99),
            max=max(seconds),
        )


def abba_schedule(first: str, second: str, seconds: float, segment_s: float) -> list[tuple[str, float]]:
    """Segments of about `segment_s` giving each of two channels `seconds` in all, ordered ABBA ABBA...

    Other work on the machine comes and goes during a run; alternating short segments, and
    mirroring each pair, makes whatever it costs fall on both channels alike.
    """
    if seconds <= 0 or segment_s <= 0:
        raise ValueError("durations must be positive")
    # Pairs in mirrored couples (AB, BA): an even count, at least one couple.
    pairs = max(2, 2 * round(seconds / segment_s / 2))
    order = [(first, second) if n % 2 == 0 else (second, first) for n in range(pairs)]
    return [(channel, seconds / pairs) for pair in order for channel in pair]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between ranks like numpy's default."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def losses(attempts: Iterable[Attempt], replies_by_sender: Mapping[str, int]) -> Losses:
    """Messages that were not answered 200, or whose 200 was not followed by a reply.

    Replies are matched per customer by count because neither the fake Graph API nor the REST
    answer says which inbound message a reply belongs to; every benchmark message gets one reply.
    """
    answered: Counter[str] = Counter()
    non_200 = 0
    for attempt in attempts:
        if attempt.status == 200:
            answered[attempt.sender] += 1
        else:
            non_200 += 1
    missing = sum(max(0, count - replies_by_sender.get(sender, 0)) for sender, count in answered.items())
    return Losses(non_200=non_200, missing_replies=missing)


def per_second(count: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"cannot compute a rate over {seconds} s")
    return count / seconds


def ms_per_message(seconds: float, count: int) -> float:
    if count <= 0:
        raise ValueError("no messages to share the time between")
    return seconds * 1000 / count


def ratio(whatsapp: float, rest: float) -> float:
    if rest <= 0:
        raise ValueError("the REST channel completed nothing: no ratio")
    return whatsapp / rest


def targets(throughput_ratio: float, whatsapp_median_s: float) -> dict[str, bool]:
    """Each target, by the name the report prints, and whether it was met."""
    return {
        f"throughput whatsapp/rest >= {RATIO_TARGET:.2f}": throughput_ratio >= RATIO_TARGET,
        f"whatsapp median < {MEDIAN_TARGET_S * 1000:.0f} ms": whatsapp_median_s < MEDIAN_TARGET_S,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux /proc)."""
    # utime and stime are fields 14 and 15; the command name before them may contain spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
