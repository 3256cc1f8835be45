"""Erasure that keeps the opt-out (issue 13, section 3), on SQLite and PostgreSQL.

`customers forget` removes the personal data and keeps the opt-out anonymised; the suppression
list then keeps the identifiers from marketing through every door (`bot.consent`: the audience
clause, the send-time check, imports); the database lets only an erasure anonymise, and only an
erased customer.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot.broadcast import audience as audiences
from bot.broadcast.audience import Audience
from bot.cli import main
from bot.consent import OPT_OUT
from bot.db import checkpoint, transaction
from bot.schema import (
    consent_events,
    customer_identities,
    customers,
    erasures,
    inbound_messages,
    message_statuses,
    suppressions,
    tags,
)
from bot.store import erasure
from bot.store.customer_import import import_customers, parse_customer_csv
from bot.store.customers import profile, record_sighting, touch_customer
from bot.store.evidence import ConsentEvidence, Question
from bot.store.identifiers import BSUID, PHONE, Identifier
from bot.store.identities import identify
from bot.store.keyed_hash import hash_of, keyed_hash
from bot.store.marketing_consent import identifier_suppressed, may_send_marketing
from bot.store.opt_out_requests import request_opt_out
from bot.store.tags import add_tag, record_opt_out

AT = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)
ADA, ADA_BSUID, BO = "4915100000001", "DE.1193386620457", "4915100000002"
EVIDENCE = ConsentEvidence(
    "de",
    "keine Werbung mehr bitte",
    AT,
    "wamid.ada-stop",
    Question(
        "utter_ask_opt_out_form_opt_out_decision", "Keine Werbung mehr?", ("Ja", "Nein"), ("/affirm", "/deny")
    ),
    "Ja",
)


def seed_ada() -> int:
    """Ada: a phone number and a BSUID, a name, an opt-out with evidence, a VIP tag, a message in
    the inbox and a status. Returns her id."""
    with transaction() as conn:
        ada = identify(conn, [Identifier(PHONE, ADA), Identifier(BSUID, ADA_BSUID)], "webhook_pair", AT)
        record_sighting(conn, ada.id, "Ada Lovelace", "ada.l", AT)
        record_opt_out(conn, ADA, "text", "wamid.ada-yes", AT, evidence=EVIDENCE)
        add_tag(conn, ADA, "VIP", "import", None, AT)
        conn.execute(
            inbound_messages.insert().values(
                wamid="wamid.ada-yes", customer_key=ada.key, state="done", attempts=1, claimed_at=AT
            )
        )
        conn.execute(
            message_statuses.insert().values(
                wamid="wamid.to-ada", recipient_id=ADA, status="read", rank=3, status_at=AT, updated_at=AT
            )
        )
        touch_customer(conn, BO, "Bo", AT)  # somebody else, untouched by Ada's erasure
        return ada.id


def forget(who: str, operator: str = "Grace (DPO)") -> erasure.ErasureReport:
    with transaction() as conn:
        found = erasure.plan(conn, who)
        assert found is not None
        return erasure.forget(conn, found, operator, AT, conversation_events=3)


def count(table, *where) -> int:
    with transaction() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_forget_removes_the_personal_data_and_keeps_the_opt_out(db_url):
    ada_id = seed_ada()
    with transaction() as conn:
        old_key = profile(conn, ADA)["key"]
    report = forget(ADA)
    assert (report.customers, report.identifiers, report.conversation_events, report.message_records) == (
        1,
        2,
        3,
        2,
    )
    with transaction() as conn:
        assert profile(conn, ADA) is None and profile(conn, ADA_BSUID) is None
        assert conn.execute(select(customers.c.id).where(customers.c.key == old_key)).first() is None
        row = conn.execute(select(customers).where(customers.c.id == ada_id)).one()
        assert row.erased_at is not None and row.key != old_key
        assert (row.name, row.username, row.language, row.first_seen_at, row.last_seen_at) == (None,) * 5
        kept = profile(conn, row.key)  # the anonymous row, by its new key
        assert kept["identities"] == [] and kept["erased_at"] is not None
        assert [(t["name"], t["message_id"]) for t in kept["tags"]] == [(OPT_OUT, None)]  # VIP went
        [event] = kept["consent_history"]
        assert (event["kind"], event["source"], event["message_id"], event["identifier_value"]) == (
            "opt_out",
            "text",
            None,
            None,
        )
        assert event["evidence"]["request"] == {"words": None, "at": AT.isoformat(), "message_id": None}
        assert event["evidence"]["question"]["version"] == EVIDENCE.question.version  # provable by version
        assert event["evidence"]["question"]["text"] is None and event["evidence"]["answer"]["words"] is None
        [record] = conn.execute(select(erasures)).all()
        assert (record.operator, record.customer_id, record.customers, record.identifiers) == (
            "Grace (DPO)",
            ada_id,
            1,
            2,
        )
        hashes = set(conn.execute(select(suppressions.c.keyed_hash)).scalars())
        assert hashes == {hash_of(Identifier(PHONE, ADA)), hash_of(Identifier(BSUID, ADA_BSUID))}
        assert profile(conn, BO)["name"] == "Bo"  # nobody else was touched
    assert count(inbound_messages) == 0 and count(message_statuses) == 0
    assert count(customer_identities) == 1  # Bo's


def test_the_suppression_list_keeps_them_from_marketing_through_every_door(db_url, tmp_path):
    seed_ada()
    forget(ADA)
    with transaction() as conn:
        # Send-time check, for an identifier nobody holds now.
        assert not may_send_marketing(conn, ADA) and not may_send_marketing(conn, ADA_BSUID)
        assert may_send_marketing(conn, BO) and may_send_marketing(conn, "4915100000099")
        assert identifier_suppressed(conn, Identifier(PHONE, ADA))
        # An import that brings the number back skips it: the data does not come back.
        rows, problems = parse_customer_csv(
            ["wa_id,name,tags\n", f"{ADA},Ada again,VIP\n", "4915100000003,Cy,\n"]
        )
        assert problems == []
        counts = import_customers(conn, rows, AT, "old-list.csv")
        assert counts.suppressed == (2,) and counts.created == 1
        assert profile(conn, ADA) is None
        # The person writes again: a new customer, and still no marketing (the audience clause too).
        touch_customer(conn, ADA, "Ada", AT)
        assert not may_send_marketing(conn, ADA)
        audiences.load_numbers(conn, audiences.parse_audience_csv(["wa_id", ADA, BO]))
        selection = audiences.count(conn, Audience(file=tmp_path / "audience.csv", file_sha256="x"))
        assert (selection.audience, selection.allowed) == (2, 1)
        assert not profile(conn, ADA)["marketing_allowed"] and profile(conn, ADA)["suppressed"]
        audiences.drop_numbers(conn)


def test_what_an_erasure_leaves_is_never_marketed_to_even_without_an_opt_out(db_url, tmp_path):
    seed_ada()
    forget(BO)  # Bo never opted out
    with transaction() as conn:
        key = conn.execute(select(customers.c.key).where(customers.c.erased_at.is_not(None))).scalar_one()
        assert not may_send_marketing(conn, key)  # e.g. a delivery pending since before the erasure
        assert audiences.count(conn, Audience()).allowed == 0  # Ada opted out, Bo is gone


def test_a_merged_family_is_forgotten_whole(db_url):
    with transaction() as conn:
        phone_half = identify(conn, [Identifier(PHONE, ADA)], "first_contact", AT)
        bsuid_half = identify(conn, [Identifier(BSUID, ADA_BSUID)], "first_contact", AT)
        request_opt_out(conn, bsuid_half.key, "text", "wamid.b-stop", AT)
        identify(
            conn, [Identifier(PHONE, ADA), Identifier(BSUID, ADA_BSUID)], "status_pair", AT, "wamid.pair"
        )
    report = forget(ADA_BSUID)
    assert (report.customers, report.identifiers) == (2, 2)
    with transaction() as conn:
        rows = conn.execute(select(customers.c.id, customers.c.erased_at)).all()
        assert {row.id for row in rows if row.erased_at is not None} == {phone_half.id, bsuid_half.id}
        assert conn.execute(text("SELECT message_id FROM customer_merges")).scalar_one() is None
        assert conn.execute(text("SELECT message_id FROM opt_out_requests")).scalar_one() is None
        with pytest.raises(erasure.AlreadyErased):
            erasure.plan(
                conn,
                conn.execute(select(customers.c.key).where(customers.c.id == phone_half.id)).scalar_one(),
            )


# --- the guards: only an erasure anonymises, and only an erased customer ----------------------


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("UPDATE consent_events SET words = NULL", "append-only"),
        ("UPDATE consent_events SET message_id = NULL", "append-only"),
        ("UPDATE tags SET message_id = NULL WHERE name = 'OPT_OUT'", "permanent"),
        ("DELETE FROM customer_identities", "never deleted"),
        ("UPDATE customers SET erased_at = CURRENT_TIMESTAMP WHERE name = 'Bo'", "erasure record"),
        ("UPDATE customers SET \"key\" = 'c_aaaaaaaaaaaaaaaaaaaa' WHERE name = 'Bo'", "never change"),
    ],
)
def test_nothing_is_anonymised_without_an_erasure(db_url, sql, refusal):
    seed_ada()
    with pytest.raises(IntegrityError, match=refusal), transaction() as conn:
        conn.execute(text(sql))
    with transaction() as conn:
        assert profile(conn, ADA)["consent_history"][0]["evidence"]["request"]["words"] == EVIDENCE.words


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("UPDATE consent_events SET kind = 'resume'", "append-only"),  # not a personal column
        ("UPDATE consent_events SET question_version = NULL", "append-only"),  # kept: proves what was asked
        ("UPDATE consent_events SET detail = 'rewritten'", "append-only"),  # personal, but only ever to NULL
        ("DELETE FROM consent_events", "append-only"),
        ("DELETE FROM tags WHERE name = 'OPT_OUT'", "permanent"),
        ("UPDATE customers SET erased_at = NULL WHERE erased_at IS NOT NULL", "erased only"),
        ("DELETE FROM suppressions", "append-only"),
        ("UPDATE suppressions SET kind = 'bsuid'", "append-only"),
        ("DELETE FROM erasures", "append-only"),
        ("UPDATE erasures SET operator = 'someone else'", "append-only"),
    ],
)
def test_an_erased_customer_keeps_the_opt_out_and_the_records_stay(db_url, sql, refusal):
    seed_ada()
    forget(ADA)
    with pytest.raises(IntegrityError, match=refusal), transaction() as conn:
        conn.execute(text(sql))
    assert count(tags, tags.c.name == OPT_OUT) == 1 and count(consent_events) == 1
    assert count(suppressions) == 2 and count(erasures) == 1


# --- the command line ------------------------------------------------------------------------


def test_forget_on_the_command_line_deletes_the_conversation_too(db_url, tmp_path, monkeypatch, capsys):
    seed_ada()
    checkpoint(db_url)  # on SQLite: Ada's rows in the database file itself, not only in its log
    tracker_url = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    monkeypatch.setenv("TRACKER_STORE_URL", tracker_url)
    events = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sender_id", sa.String(255)),
    )
    engine = sa.create_engine(tracker_url)
    events.create(engine)
    with transaction() as conn:
        ada_key, bo_key = profile(conn, ADA)["key"], profile(conn, BO)["key"]
    with engine.begin() as conn:
        conn.execute(events.insert(), [{"sender_id": ada_key}, {"sender_id": ada_key}, {"sender_id": bo_key}])
    assert main(["customers", "forget", ADA, "--operator", "Grace"]) == 0
    output = capsys.readouterr().out
    assert "2 conversation event(s)" in output and ADA not in output
    with engine.begin() as conn:
        assert [row.sender_id for row in conn.execute(select(events.c.sender_id))] == [bo_key]
    engine.dispose()
    if db_url.startswith("sqlite"):
        # Nothing of Ada is left readable in the files, their free pages or the write-ahead log
        # (forget checkpoints the log; secure_delete is a second line for pages SQLite keeps).
        store = db_url.removeprefix("sqlite:///")
        files = [store, f"{store}-wal", str(tmp_path / "tracker.sqlite3")]
        written = b"".join(Path(name).read_bytes() for name in files if Path(name).exists())
        for personal in (ADA, ADA_BSUID, EVIDENCE.words, "Lovelace"):
            assert personal.encode() not in written, personal
    assert main(["customers", "show", ADA]) == 1
    assert "no customer" in capsys.readouterr().err
    assert main(["customers", "forget", ADA, "--operator", "Grace"]) == 1  # nobody has it now


def test_forget_with_the_conversations_in_the_store_database(sqlite_url, monkeypatch, capsys):
    # One SQLite file for both (TRACKER_STORE_URL = DATABASE_URL): the erasure's own transaction
    # deletes the conversation, instead of a second connection waiting for its lock.
    seed_ada()
    monkeypatch.setenv("TRACKER_STORE_URL", sqlite_url)
    with transaction() as conn:
        key = profile(conn, ADA)["key"]
        conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255))"))
        conn.execute(text("INSERT INTO events (sender_id) VALUES (:key)"), {"key": key})
    assert main(["customers", "forget", ADA, "--operator", "Grace"]) == 0
    assert "1 conversation event(s)" in capsys.readouterr().out
    assert count(sa.table("events")) == 0


@pytest.mark.parametrize(
    ("operator", "message"), [("", "operator"), ("x" * 65, "operator"), ("a\nb", "operator")]
)
def test_forget_needs_an_operator_name(db_url, capsys, operator, message):
    seed_ada()
    assert main(["customers", "forget", ADA, "--operator", operator]) == 1
    assert message in capsys.readouterr().err
    assert count(erasures) == 0


def test_forget_of_nobody_or_nonsense_says_so(db_url, capsys):
    assert main(["customers", "forget", "16505550000", "--operator", "Grace"]) == 1
    assert "no customer with number" in capsys.readouterr().err
    assert main(["customers", "forget", "nonsense", "--operator", "Grace"]) == 1
    assert "invalid ID" in capsys.readouterr().err


def test_the_keyed_hash_needs_the_key():
    identifier = Identifier(PHONE, ADA)
    assert keyed_hash(b"one", identifier) == keyed_hash(b"one", identifier)
    assert keyed_hash(b"one", identifier) != keyed_hash(b"two", identifier)
    assert keyed_hash(b"one", identifier) != keyed_hash(b"one", Identifier(PHONE, BO))
    assert ADA not in keyed_hash(b"one", identifier) and len(keyed_hash(b"one", identifier)) == 64


def test_show_json_of_an_erased_customer_holds_nothing_personal(db_url, capsys):
    seed_ada()
    forget(ADA)
    with transaction() as conn:
        key = conn.execute(select(customers.c.key).where(customers.c.erased_at.is_not(None))).scalar_one()
    assert main(["customers", "show", key]) == 0
    shown = capsys.readouterr().out
    for personal in (ADA, ADA_BSUID, "Ada", "ada.l", "wamid", EVIDENCE.words):
        assert personal not in shown
    assert json.loads(shown)["tags"][0]["name"] == OPT_OUT
