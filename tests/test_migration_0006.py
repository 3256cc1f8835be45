"""Migration 0006 (consent evidence, language, erasure) up and down, on SQLite and PostgreSQL, with
data in it: existing records stay, every identity gets its keyed hash, a customer migrated with its
phone number as key can be forgotten, and the downgrade refuses to drop evidence or the
suppression list but otherwise restores 0005's guards exactly."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.db import engine_for, transaction
from bot.migrations import alembic_config
from bot.store import erasure
from bot.store.customers import profile
from bot.store.evidence import ConsentEvidence
from bot.store.identifiers import PHONE, Identifier
from bot.store.keyed_hash import hash_of
from bot.store.marketing_consent import may_send_marketing
from bot.store.tags import record_opt_out
from tests.databases import at_revision

ADA, BEN = "16505551234", "4915112345678"
AT = "2026-05-01 10:00:00"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)

# What revision 0005 held: Ada (migrated from 0004: her key is her number) opted out, Ben asked to
# stop; both have a phone identity.
OLD_ROWS = (
    f"INSERT INTO customers (id, \"key\", name) VALUES (1, '{ADA}', 'Ada'), (2, 'c_bbbbbbbbbbbbbbbbbbbb', 'Ben')",
    "INSERT INTO customer_identities (customer_id, kind, value, status, evidence, first_seen_at, last_seen_at)"
    f" VALUES (1, 'phone', '{ADA}', 'active', 'migrated', '{AT}', '{AT}'),"
    f" (2, 'phone', '{BEN}', 'active', 'first_contact', '{AT}', '{AT}')",
    f"INSERT INTO tags (customer_id, name, added_at, source, message_id) VALUES (1, 'OPT_OUT', '{AT}', 'text', 'wamid.1')",
    "INSERT INTO consent_events (customer_id, kind, source, message_id, occurred_at, recorded_at)"
    f" VALUES (1, 'opt_out', 'text', 'wamid.1', '{AT}', '{AT}')",
    f"INSERT INTO opt_out_requests (customer_id, requested_at, source, message_id) VALUES (2, '{AT}', 'text', 'wamid.2')",
)


@pytest.fixture
def old_database(empty_db_url: str) -> str:
    """A database at revision 0005 holding OLD_ROWS; DATABASE_URL points at it."""
    return at_revision(empty_db_url, "0005", OLD_ROWS, last_customer_id=2)


def test_upgrade_keeps_the_records_and_hashes_every_identity(old_database):
    command.upgrade(alembic_config(old_database), "head")
    with transaction(engine_for(old_database)) as conn:
        ada = profile(conn, ADA)
        assert ada["key"] == ADA and ada["language"] is None and ada["erased_at"] is None
        [event] = ada["consent_history"]
        assert event["message_id"] == "wamid.1" and event["evidence"]["question"] is None
        hashes = dict(conn.execute(text("SELECT value, keyed_hash FROM customer_identities")).all())
        assert hashes == {ADA: hash_of(Identifier(PHONE, ADA)), BEN: hash_of(Identifier(PHONE, BEN))}
        assert not may_send_marketing(conn, ADA) and not may_send_marketing(conn, BEN)
        # Ada's key is her number: forgetting her gives the row a new one.
        found = erasure.plan(conn, ADA)
        erasure.forget(conn, found, "Grace", NOW, 0)
        assert profile(conn, ADA) is None and not may_send_marketing(conn, ADA)
        assert conn.execute(text('SELECT "key" FROM customers WHERE id = 1')).scalar_one() != ADA
    with pytest.raises(IntegrityError), engine_for(old_database).begin() as conn:
        conn.execute(text("UPDATE customer_identities SET keyed_hash = 'x'"))  # a hash never changes


def test_downgrade_refuses_to_drop_evidence_or_the_suppression_list(old_database):
    config = alembic_config(old_database)
    command.upgrade(config, "head")
    engine = engine_for(old_database)
    with transaction(engine) as conn:
        record_opt_out(conn, BEN, "text", "wamid.3", NOW, evidence=ConsentEvidence("de", "STOPP"))
    with pytest.raises(RuntimeError, match="refusing to downgrade"):
        command.downgrade(config, "0005")
    with transaction(engine) as conn:
        assert profile(conn, BEN)["consent_history"][0]["evidence"]["request"]["words"] == "STOPP"


def test_downgrade_without_evidence_restores_0005s_guards(old_database):
    config = alembic_config(old_database)
    command.upgrade(config, "head")
    command.downgrade(config, "0005")
    engine = engine_for(old_database)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM consent_events")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM customer_identities")).scalar_one() == 2
    for refused in (
        "UPDATE consent_events SET message_id = NULL",
        "DELETE FROM consent_events",
        "UPDATE tags SET message_id = NULL",
        "DELETE FROM customer_identities",
        "UPDATE customer_identities SET value = '15550000000'",
        "UPDATE opt_out_requests SET message_id = NULL",
        "UPDATE customers SET \"key\" = 'c_cccccccccccccccccccc' WHERE id = 2",
    ):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(refused))
    with engine.begin() as conn:  # what 0005 allows still works
        conn.execute(text("UPDATE customers SET name = 'Benjamin' WHERE id = 2"))
    command.upgrade(config, "head")
    with transaction(engine) as conn:
        assert profile(conn, BEN)["name"] == "Benjamin" and not may_send_marketing(conn, ADA)
