"""`bot/schema.py` and the migrations describe the same database.

The tables are declared twice: in `bot/schema.py` (what the code queries) and in
`bot/migrations/versions/` (what a database really gets). An empty database migrated to head must
match `schema.metadata` (Alembic's `compare_metadata`: tables, columns, types, nullability,
indexes, unique constraints, foreign keys) and carry every consent guard trigger, on both
dialects. A column added to one and forgotten in the other fails here, not in production.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bot import schema
from bot.db import engine_for
from bot.migrations import upgrade

# The guards migrations 0002, 0004, 0005 and 0006 install (the opt-out can never be removed; ids,
# keys and identities never change; the audit tables are append-only). PostgreSQL folds UPDATE and
# DELETE into one trigger where SQLite needs two, and needs no REPLACE guards (it has no
# INSERT OR REPLACE), but guards TRUNCATE, which SQLite does not have.
APPEND_ONLY = ("consent_events", "customer_merges", "erasures", "suppressions")
SQLITE_TRIGGERS = {
    *(f"{table}_{guard}" for table in APPEND_ONLY for guard in ("no_update", "no_delete", "no_replace")),
    "customer_identities_fixed",
    "customer_identities_no_delete",
    "customer_identities_no_replace",
    "customers_erasure_recorded",
    "customers_key_fixed",
    "customers_merge_permanent",
    "customers_no_replace",
    "customers_opt_out_no_delete",
    "opt_out_requests_no_delete",
    "opt_out_requests_no_replace",
    "opt_out_requests_resolve_only",
    "tags_identity_fixed",
    "tags_opt_out_no_delete",
    "tags_opt_out_no_replace",
    "tags_opt_out_no_update",
}

GUARDED = ("consent_events", "customer_identities", "customer_merges", "customers", "erasures")
POSTGRESQL_TRIGGERS = {
    *(f"{table}_no_truncate" for table in (*GUARDED, "opt_out_requests", "suppressions", "tags")),
    "consent_events_no_delete",
    "consent_events_no_update",
    "customer_identities_fixed",
    "customer_identities_no_delete",
    "customer_merges_no_delete",
    "customer_merges_no_update",
    "customers_erasure_recorded",
    "customers_key_fixed",
    "customers_merge_permanent",
    "customers_opt_out_no_delete",
    "erasures_no_change",
    "opt_out_requests_no_delete",
    "opt_out_requests_resolve_only",
    "suppressions_no_change",
    "tags_identity_fixed",
    "tags_opt_out_no_delete",
    "tags_opt_out_no_update",
}


def _differences(url: str) -> list[tuple]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, schema.metadata))
    finally:
        engine.dispose()


def _triggers(url: str, query: str) -> set[str]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(query)).scalars())
    finally:
        engine.dispose()


def _unique_sqlite_indexes(url: str, table: str) -> dict[str, tuple[str, ...]]:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            indexes = conn.exec_driver_sql(f"PRAGMA index_list({table})").all()
            return {
                index.name: tuple(
                    column.name for column in conn.exec_driver_sql(f"PRAGMA index_info({index.name})")
                )
                for index in indexes
                if index.unique
            }
    finally:
        engine.dispose()


def _without_sqlite_inline_uniques(differences: list[tuple]) -> list[tuple]:
    """SQLAlchemy cannot reflect a column-level `UNIQUE` on SQLite (it only sees the automatic
    index behind it), so migration 0005's rebuilt `customers."key" ... UNIQUE` looks missing. The
    uniqueness itself is checked below through that index (an insert cannot show it: the
    `customers_no_replace` trigger silently ignores a duplicate before the constraint sees it)."""
    return [
        difference
        for difference in differences
        if not (
            difference[0] == "add_constraint"
            and difference[1].table.name == "customers"
            and [column.name for column in difference[1].columns] == ["key"]
        )
    ]


def test_an_sqlite_database_migrated_to_head_matches_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    upgrade(url)
    assert _without_sqlite_inline_uniques(_differences(url)) == []
    unique_indexes = _unique_sqlite_indexes(url, "customers")
    assert ("key",) in unique_indexes.values()
    assert _triggers(url, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == SQLITE_TRIGGERS


def test_a_postgresql_database_migrated_to_head_matches_the_schema(postgres_server):
    postgres_url = postgres_server.create_database()
    upgrade(postgres_url)
    assert _differences(postgres_url) == []
    found = _triggers(postgres_url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    assert found == POSTGRESQL_TRIGGERS
