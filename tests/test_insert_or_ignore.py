"""`bot.db.insert_or_ignore`: a text INSERT ... ON CONFLICT DO NOTHING compiled once, that must
behave as the SQLAlchemy Core insert it replaced: typed parameters, Python-side column defaults
filled in, True only when a row was added, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, select

from bot.db import engine_for, insert_or_ignore, transaction

metadata = MetaData()
samples = Table(
    "insert_or_ignore_samples",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),  # a Python-side default
)
with_callable_default = Table(
    "insert_or_ignore_callable",
    MetaData(),
    Column("key", String(32), primary_key=True),
    Column("at", DateTime(timezone=True), default=func.now()),
)


def test_a_row_is_added_once_with_its_types_and_defaults(db_url):
    engine = engine_for(db_url)
    metadata.create_all(engine)
    at = datetime(2026, 12, 2, 12, 0, 0, 123456, tzinfo=timezone.utc)
    with transaction(engine) as conn:
        assert insert_or_ignore(conn, samples, {"key": "a", "at": at}) is True
        # The same key again, even with other values: ignored, and False.
        assert insert_or_ignore(conn, samples, {"key": "a", "at": at, "attempts": 5}) is False
        assert insert_or_ignore(conn, samples, {"key": "b", "at": at, "attempts": 3}) is True
    with transaction(engine) as conn:
        rows = conn.execute(select(samples).order_by(samples.c.key)).all()
    assert [(row.key, row.attempts) for row in rows] == [("a", 1), ("b", 3)]
    # The DateTime went through the dialect's own processing: read back as the same instant.
    assert all(row.at.replace(tzinfo=row.at.tzinfo or timezone.utc) == at for row in rows)


def test_a_callable_default_is_refused_rather_than_left_out(db_url):
    engine = engine_for(db_url)
    with_callable_default.metadata.create_all(engine)
    with transaction(engine) as conn, pytest.raises(NotImplementedError, match="scalar"):
        insert_or_ignore(conn, with_callable_default, {"key": "a"})
