"""The send rate: one token bucket per business phone number, shared by every worker on every host.

WhatsApp's throughput limit (80 messages/s by default, up to 1,000/s) is per business number, so
the bucket is a row of `send_rate_buckets`, not a worker's memory: each worker books the tokens for
its next batch in one short transaction (the row is locked meanwhile: FOR UPDATE on PostgreSQL,
SQLite's single writer), and waits out the debt it took on. Booking ahead (the balance may go
negative) keeps every worker in arrival order without a queue. The database, not Redis, because
every worker already holds a connection to it and books once per batch (a handful of times a
second), and Redis is optional in this project.

When WhatsApp answers 130429 anyway, `lower` halves the rate for every worker at once (the
bucket's `ceiling`), at most once a second, since a batch in flight gets several 130429s for one
excess; a minute without another lets the broadcast's own rate back (WhatsApp may have raised the
number's tier). Times are Unix seconds: workers on several hosts need their clocks in sync (NTP),
as the leases do.

The decisions are pure functions of a `Bucket`; `reserve` and `lower` are the thin shells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from bot.db import insert_or_ignore
from bot.schema import send_rate_buckets

DEFAULT_RATE = 80.0  # WhatsApp's standard tier
UNLIMITED = math.inf
MIN_RATE = 1.0
SLOW_DOWN_EVERY = 1.0  # seconds: one 130429 excess answers a whole batch in flight
RECOVER_AFTER = 60.0  # seconds without a 130429 before the broadcast's own rate applies again

_b = send_rate_buckets.c


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated_at: float
    ceiling: float | None = None  # lowered by a 130429 at `lowered_at`
    lowered_at: float | None = None


def burst(rate: float) -> float:
    """A tenth of a second's worth: smooth sending, not a burst after every pause."""
    return max(1.0, rate / 10)


def effective_rate(bucket: Bucket, target: float, now: float) -> float:
    """The broadcast's rate, or the ceiling a recent 130429 imposed if that is lower."""
    if bucket.ceiling is None or bucket.lowered_at is None or now - bucket.lowered_at >= RECOVER_AFTER:
        return target
    return min(target, bucket.ceiling)


def book(bucket: Bucket, target: float, count: int, now: float) -> tuple[Bucket, float]:
    """Pure: book `count` tokens at `now`; the new bucket and how long to wait before sending."""
    if target <= 0:
        raise ValueError("rate must be positive")
    rate = effective_rate(bucket, target, now)
    recovered = rate == target
    ceiling = None if recovered else bucket.ceiling
    lowered_at = None if recovered else bucket.lowered_at
    if math.isinf(rate):
        return Bucket(0.0, now, ceiling, lowered_at), 0.0
    earned = max(0.0, now - bucket.updated_at) * rate
    tokens = min(burst(rate), bucket.tokens + earned) - count
    wait = 0.0 if tokens >= 0 else -tokens / rate
    return Bucket(tokens, now, ceiling, lowered_at), wait


def lowered(bucket: Bucket, target: float, now: float, factor: float = 0.5) -> Bucket:
    """Pure: WhatsApp answered 130429. Halve the rate in force (from unlimited: WhatsApp's standard
    tier, the one limit we know of), unless another worker did so less than a second ago."""
    if bucket.lowered_at is not None and now - bucket.lowered_at < SLOW_DOWN_EVERY:
        return bucket
    current = effective_rate(bucket, target, now)
    rate = max(MIN_RATE, (DEFAULT_RATE if math.isinf(current) else current) * factor)
    return Bucket(min(bucket.tokens, burst(rate)), bucket.updated_at, rate, now)


def reserve(conn: Connection, phone_number_id: str, target: float, count: int, now: float) -> float:
    """Book `count` sends on the number's shared bucket; the seconds to wait before sending them."""
    bucket, wait = book(_locked(conn, phone_number_id, now), target, count, now)
    _save(conn, phone_number_id, bucket)
    return wait


def lower(conn: Connection, phone_number_id: str, target: float, now: float) -> float:
    """Record a 130429 for every worker of this number; the rate now in force."""
    bucket = lowered(_locked(conn, phone_number_id, now), target, now)
    _save(conn, phone_number_id, bucket)
    return effective_rate(bucket, target, now)


def current_rate(conn: Connection, phone_number_id: str, target: float, now: float) -> float:
    row = conn.execute(select(send_rate_buckets).where(_b.phone_number_id == phone_number_id)).first()
    if row is None:
        return target
    return effective_rate(Bucket(row.tokens, row.updated_at, row.ceiling, row.lowered_at), target, now)


def _locked(conn: Connection, phone_number_id: str, now: float) -> Bucket:
    # Write first, read second: the UPDATE takes the row lock (PostgreSQL) or the write lock
    # (SQLite) before the read, so two workers never book from the same balance. A SQLite reader
    # that wrote second would fail with "database is locked" instead of waiting.
    touched = conn.execute(
        update(send_rate_buckets)
        .where(_b.phone_number_id == phone_number_id)
        .values(phone_number_id=_b.phone_number_id)
    )
    if touched.rowcount < 1:
        insert_or_ignore(
            conn, send_rate_buckets, {"phone_number_id": phone_number_id, "tokens": 1.0, "updated_at": now}
        )
        conn.execute(
            update(send_rate_buckets)
            .where(_b.phone_number_id == phone_number_id)
            .values(phone_number_id=_b.phone_number_id)
        )
    row = conn.execute(select(send_rate_buckets).where(_b.phone_number_id == phone_number_id)).one()
    return Bucket(row.tokens, row.updated_at, row.ceiling, row.lowered_at)


def _save(conn: Connection, phone_number_id: str, bucket: Bucket) -> None:
    conn.execute(
        update(send_rate_buckets)
        .where(_b.phone_number_id == phone_number_id)
        .values(
            tokens=bucket.tokens,
            updated_at=bucket.updated_at,
            ceiling=bucket.ceiling,
            lowered_at=bucket.lowered_at,
        )
    )
