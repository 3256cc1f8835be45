"""Migration 0007 (broadcast workers) up and down, on SQLite and PostgreSQL, with deliveries in it:
existing ones keep their state and outcome; a claim nothing was sent for goes back to pending."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from bot.db import engine_for
from bot.migrations import alembic_config

AT = "2026-05-01 10:00:00"
ROWS = (
    "INSERT INTO customers (id, key) VALUES (1, 'c_one'), (2, 'c_two')",
    "INSERT INTO broadcasts (id, template, language, params, audience, rate, audience_count,"
    f" excluded_opted_out, created_at) VALUES ('b1', 'promo', 'en', '[]', 'all', 80, 2, 0, '{AT}')",
    "INSERT INTO broadcast_deliveries (broadcast_id, customer_id, customer_key, state, wamid, updated_at)"
    f" VALUES ('b1', 1, 'c_one', 'sent', 'wamid.1', '{AT}'), ('b1', 2, 'c_two', 'pending', NULL, '{AT}')",
)


def test_0007_adds_leases_and_the_shared_bucket_and_comes_back_down(db_url):
    config = alembic_config(db_url)
    command.downgrade(config, "0006")
    engine = engine_for(db_url)
    with engine.begin() as conn:
        for statement in ROWS:
            conn.execute(text(statement))
    command.upgrade(config, "head")
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT customer_id, state, wamid, attempts, claimed_by FROM broadcast_deliveries ORDER BY 1"
            )
        ).all()
        assert [tuple(r) for r in rows] == [(1, "sent", "wamid.1", 0, None), (2, "pending", None, 0, None)]
        conn.execute(
            text("UPDATE broadcast_deliveries SET state = 'claimed', claimed_by = 'w' WHERE customer_id = 2")
        )
        conn.execute(
            text("INSERT INTO send_rate_buckets (phone_number_id, tokens, updated_at) VALUES ('1', 1, 0)")
        )
    command.downgrade(config, "0006")
    with engine.begin() as conn:
        states = (
            conn.execute(text("SELECT state FROM broadcast_deliveries ORDER BY customer_id")).scalars().all()
        )
        assert states == ["sent", "pending"]
    engine.dispose()
    command.upgrade(config, "head")
