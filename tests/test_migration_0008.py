"""Migration 0008 (the consent rule's index on customers.merged_into) up and down, on SQLite and
PostgreSQL, with a merged family in the table."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from bot.consent import customers_allowed_marketing
from bot.db import engine_for
from bot.migrations import alembic_config


def _indexes(engine) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes("customers")}


def test_0008_indexes_merged_into_and_comes_back_down(db_url):
    config = alembic_config(db_url)
    command.downgrade(config, "0007")
    engine = engine_for(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customers (id, key) VALUES (1, 'c_one'), (2, 'c_two')"))
        conn.execute(text("UPDATE customers SET merged_into = 1 WHERE id = 2"))
    assert "ix_customers_merged_into" not in _indexes(engine)
    command.upgrade(config, "head")
    engine.dispose()  # SQLite: a pooled connection keeps the schema it read
    assert "ix_customers_merged_into" in _indexes(engine)
    with engine.begin() as conn:
        assert customers_allowed_marketing(conn, [1]) == {1}
        # An opt-out recorded on the merged member is the family's (found through the index).
        conn.execute(
            text(
                "INSERT INTO tags (customer_id, name, added_at, source) VALUES (2, 'OPT_OUT', :at, 'import')"
            ),
            {"at": "2026-05-01 10:00:00"},
        )
        assert customers_allowed_marketing(conn, [1]) == set()
    command.downgrade(config, "0007")
    engine.dispose()
    assert "ix_customers_merged_into" not in _indexes(engine)
    command.upgrade(config, "head")
