"""Opt-outs over time: calendar buckets (UTC), counting, and an inline SVG bar chart.

Server-rendered SVG needs no script and no CDN, prints, and is read by screen readers through its
title and description (the page also shows the same numbers as a table).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from bot.dashboard.html import Safe, join, render


@dataclass(frozen=True, slots=True)
class Period:
    """A choice on the statistics page: `count` buckets of one `unit`, ending with the current one."""

    key: str
    label: str
    unit: str  # day | week | month
    count: int


PERIODS = (
    Period("30d", "Last 30 days, by day", "day", 30),
    Period("12w", "Last 12 weeks, by week", "week", 12),
    Period("12m", "Last 12 months, by month", "month", 12),
)
DEFAULT_PERIOD = PERIODS[0]


def period_for(key: str | None) -> Period:
    return next((p for p in PERIODS if p.key == key), DEFAULT_PERIOD)


@dataclass(frozen=True, slots=True)
class Bucket:
    start: date  # inclusive
    end: date  # exclusive
    label: str


def _month_start(day: date, months_back: int) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def buckets(period: Period, today: date) -> list[Bucket]:
    """The period's buckets, oldest first; the last one holds `today`. Weeks start on Monday."""
    result = []
    for back in range(period.count - 1, -1, -1):
        if period.unit == "day":
            start = today - timedelta(days=back)
            result.append(Bucket(start, start + timedelta(days=1), start.isoformat()))
        elif period.unit == "week":
            start = today - timedelta(days=today.weekday() + 7 * back)
            result.append(Bucket(start, start + timedelta(days=7), f"week of {start.isoformat()}"))
        elif period.unit == "month":
            start = _month_start(today, back)
            result.append(Bucket(start, _month_start(today, back - 1), start.strftime("%Y-%m")))
        else:
            raise ValueError(f"unknown unit {period.unit!r}")
    return result


def utc_day(at: datetime) -> date:
    if at.tzinfo is None:  # the store writes UTC; SQLite hands it back without an offset
        return at.date()
    return at.astimezone(timezone.utc).date()


def count_into(bucket_list: Sequence[Bucket], moments: Iterable[datetime]) -> list[int]:
    """How many moments fall in each bucket (by UTC calendar day); others are ignored."""
    starts = [b.start for b in bucket_list]
    counts = [0] * len(bucket_list)
    for at in moments:
        day = utc_day(at)
        index = bisect.bisect_right(starts, day) - 1
        if index >= 0 and day < bucket_list[index].end:
            counts[index] += 1
    return counts


def nice_ceiling(value: int) -> int:
    """The axis maximum: 1, 2, 5 or 10 times a power of ten, at least `value` (and at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    raise AssertionError("unreachable")


# Chart geometry, in SVG user units (the SVG scales to the page width).
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 40, 16, 52  # room for the newest date under the last bar


def bar_chart(labels: Sequence[str], values: Sequence[int], title: str, description: str) -> Safe:
    """One bar per bucket, a y axis with 0, half and the maximum, and every few x labels."""
    if len(labels) != len(values) or not labels:
        raise ValueError("one label per value, at least one")
    top = nice_ceiling(max(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(values)
    bar_w = max(1.0, slot * 0.7)
    label_every = max(1, math.ceil(len(labels) / 8))
    parts = []
    for tick in sorted({0, top // 2, top}):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            render(
                '<line class="grid" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>'
                '<text class="axis" x="{tx}" y="{ty}" text-anchor="end">{tick}</text>',
                x1=LEFT,
                x2=WIDTH - RIGHT,
                y=f"{y:.1f}",
                tx=LEFT - 6,
                ty=f"{y + 4:.1f}",
                tick=tick,
            )
        )
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = plot_h * value / top
        x = LEFT + index * slot + (slot - bar_w) / 2
        parts.append(
            render(
                '<rect class="bar" x="{x}" y="{y}" width="{w}" height="{h}">'
                "<title>{label}: {value} opt-out{s}</title></rect>",
                x=f"{x:.1f}",
                y=f"{TOP + plot_h - height:.1f}",
                w=f"{bar_w:.1f}",
                h=f"{height:.1f}",
                label=label,
                value=value,
                s="" if value == 1 else "s",
            )
        )
        if (len(labels) - 1 - index) % label_every == 0:  # counted from the newest: always labelled
            parts.append(
                render(
                    '<text class="axis" x="{x}" y="{y}" text-anchor="middle">{label}</text>',
                    x=f"{LEFT + index * slot + slot / 2:.1f}",
                    y=HEIGHT - BOTTOM + 18,
                    label=label.removeprefix("week of "),
                )
            )
    return render(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title chart-desc"'
        ' xmlns="http://www.w3.org/2000/svg">'
        '<title id="chart-title">{title}</title><desc id="chart-desc">{description}</desc>'
        '<line class="axis-line" x1="{left}" x2="{right}" y1="{base}" y2="{base}"/>{parts}</svg>',
        w=WIDTH,
        h=HEIGHT,
        title=title,
        description=description,
        left=LEFT,
        right=WIDTH - RIGHT,
        base=HEIGHT - BOTTOM,
        parts=join(parts),
    )
