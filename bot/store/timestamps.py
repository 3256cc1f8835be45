"""Datetimes in and out of the store: always timezone-aware, always UTC.

SQLite keeps only the wall-clock fields of a datetime and drops its offset, so everything is
written in UTC and naive values read back are UTC by construction.
"""

from __future__ import annotations

from datetime import datetime, timezone


def to_db(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        # A naive value could be local time or UTC; for consent records we do not guess.
        raise ValueError(f"naive datetime {at.isoformat()}: pass a timezone-aware one")
    return at.astimezone(timezone.utc)


def from_db(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return None if value is None else from_db(value).isoformat()


def now() -> datetime:
    return datetime.now(timezone.utc)


def from_unix(seconds: int) -> datetime:
    """Meta's webhook timestamps (Unix seconds) as aware UTC datetimes."""
    return datetime.fromtimestamp(seconds, timezone.utc)
