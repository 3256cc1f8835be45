"""Migration 0005 (customer identities) up and down, on SQLite and PostgreSQL, with data in it:
existing customers keep their tags, consent history, open requests and deliveries, and their key
is their old wa_id (their Rasa conversations are keyed by it)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.db import engine_for, transaction
from bot.migrations import alembic_config
from bot.store.customers import profile
from bot.store.identifiers import BSUID, Identifier, looks_like_new_key
from bot.store.identities import address_of, identify, resolve
from bot.store.marketing_consent import may_send_marketing
from tests.databases import at_revision

ADA, BEN = "16505551234", "4915112345678"
AT = "2026-05-01 10:00:00"

# What revision 0004 held: two customers, an opt-out with its history, a VIP tag, an open request,
# a broadcast delivery and a claimed inbound message.
OLD_ROWS = (
    f"INSERT INTO customers (id, wa_id, name, first_seen_at, last_seen_at) VALUES (1, '{ADA}', 'Ada', '{AT}', '{AT}')",
    f"INSERT INTO customers (id, wa_id, name) VALUES (2, '{BEN}', 'Ben')",
    f"INSERT INTO tags (customer_id, name, added_at, source, message_id) VALUES (1, 'OPT_OUT', '{AT}', 'text', 'wamid.1')",
    f"INSERT INTO tags (customer_id, name, added_at, source) VALUES (2, 'VIP', '{AT}', 'import')",
    "INSERT INTO consent_events (customer_id, kind, source, message_id, occurred_at, recorded_at)"
    f" VALUES (1, 'opt_out', 'text', 'wamid.1', '{AT}', '{AT}')",
    f"INSERT INTO opt_out_requests (customer_id, requested_at, source, message_id) VALUES (2, '{AT}', 'text', 'wamid.2')",
    "INSERT INTO broadcasts (id, template, language, params, audience, rate, audience_count,"
    f" excluded_opted_out, created_at) VALUES ('b1', 'promo', 'en', '[]', 'all', 1, 2, 1, '{AT}')",
    "INSERT INTO broadcast_deliveries (broadcast_id, customer_id, wa_id, state, updated_at)"
    f" VALUES ('b1', 2, '{BEN}', 'pending', '{AT}')",
    "INSERT INTO inbound_messages (wamid, wa_id, state, attempts, claimed_at)"
    f" VALUES ('wamid.2', '{BEN}', 'done', 1, '{AT}')",
)


@pytest.fixture
def old_database(empty_db_url: str) -> str:
    """A database at revision 0004 holding OLD_ROWS; DATABASE_URL points at it."""
    return at_revision(empty_db_url, "0004", OLD_ROWS, last_customer_id=2)


def test_upgrade_keeps_every_customer_and_consent_record_under_its_old_number(old_database):
    command.upgrade(alembic_config(old_database), "head")
    with transaction(engine_for(old_database)) as conn:
        ada, ben = profile(conn, ADA), profile(conn, "+49 151 12345678")
        assert ada["key"] == ADA and ben["key"] == BEN  # the Rasa sender ids they had
        assert resolve(conn, ADA).id == 1
        assert [(i["kind"], i["value"], i["evidence"]) for i in ada["identities"]] == [
            ("phone", ADA, "migrated")
        ]
        assert [t["name"] for t in ada["tags"]] == ["OPT_OUT"]
        assert [e["kind"] for e in ada["consent_history"]] == ["opt_out"]
        assert [t["name"] for t in ben["tags"]] == ["VIP"]
        assert ben["opt_out_request"]["message_id"] == "wamid.2"
        assert not may_send_marketing(conn, ADA) and not may_send_marketing(conn, BEN)
        assert conn.execute(text("SELECT customer_key FROM broadcast_deliveries")).scalar_one() == BEN
        assert conn.execute(text("SELECT customer_key FROM inbound_messages")).scalar_one() == BEN
        # New customers get opaque keys beside the migrated ones.
        ana = identify(conn, [Identifier(BSUID, "DE.77")], "first_contact", None)
        assert looks_like_new_key(ana.key)
        assert address_of(conn, 1).field == "to"
    with pytest.raises(IntegrityError), engine_for(old_database).begin() as conn:
        conn.execute(text("DELETE FROM customers WHERE id = 1"))  # the opt-out guard survived the rebuild


def test_downgrade_restores_the_numbers_and_refuses_what_it_cannot_hold(old_database):
    config = alembic_config(old_database)
    command.upgrade(config, "head")
    command.downgrade(config, "0004")
    engine = engine_for(old_database)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT id, wa_id FROM customers ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [(1, ADA), (2, BEN)]
        assert conn.execute(text("SELECT wa_id FROM broadcast_deliveries")).scalar_one() == BEN
        assert conn.execute(text("SELECT count(*) FROM tags WHERE name = 'OPT_OUT'")).scalar_one() == 1
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE customers SET wa_id = '15550000000' WHERE id = 1"))  # 0002's guard is back
    # Up again, and now a customer without a phone number exists: down is refused, nothing lost.
    command.upgrade(config, "head")
    with transaction(engine) as conn:
        identify(conn, [Identifier(BSUID, "DE.77")], "first_contact", None)
    with pytest.raises(RuntimeError, match="refusing to downgrade"):
        command.downgrade(config, "0004")
    # SQLite has no transactional DDL: the later revisions' downgrades ran before 0005's refusal.
    command.upgrade(config, "head")
    with transaction(engine) as conn:
        assert resolve(conn, "DE.77") is not None and not may_send_marketing(conn, ADA)
