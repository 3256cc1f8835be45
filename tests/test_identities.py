"""Customers and their identifiers (bot/store/identities.py) on SQLite and PostgreSQL: resolution,
linking, merging, recycled numbers, rotation, consent per customer, and the database guards."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot.db import get_engine, transaction
from bot.schema import customer_identities, customer_merges, customers
from bot.store.customers import profile
from bot.store.identifiers import (
    BSUID,
    PARENT_BSUID,
    PHONE,
    Identifier,
    from_webhook,
    looks_like_new_key,
    new_customer_key,
    parse_human,
)
from bot.store.identities import (
    Address,
    address_of,
    conversation_id,
    ensure,
    identify,
    resolve,
    rotate,
)
from bot.store.marketing_consent import may_send_marketing
from bot.store.opt_out_requests import keep_marketing, request_opt_out
from bot.store.tags import record_opt_out

AT = datetime(2026, 9, 1, 10, 0, tzinfo=timezone.utc)
P1, P2 = Identifier(PHONE, "4915112345678"), Identifier(PHONE, "4917798765432")
B1, B2, B3 = (Identifier(BSUID, f"DE.{n}") for n in ("1193386620457", "5560021187734", "9988776655"))
PARENT = Identifier(PARENT_BSUID, "DE.ENT.5512")


# --- pure parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        (PHONE, "6831234", True),  # Niue: 7 digits
        (PHONE, "683123", False),
        (PHONE, "123456789012345", True),
        (PHONE, "1234567890123456", False),  # 16 digits
        (PHONE, "0612345678", False),
        (PHONE, "<WHATSAPP_USER_PHONE_NUMBER>", False),
        (BSUID, "US." + "1" * 128, True),
        (BSUID, "US." + "1" * 129, False),
        (BSUID, "US.13491208655302741918", True),
        (BSUID, "US.abcXYZ09", True),  # alphanumeric, not digits only
        (BSUID, "us.13491208655302741918", False),  # lower-case country code
        (BSUID, "USA.1349", False),
        (BSUID, "US.ENT.1181", False),  # a parent BSUID is not a BSUID
        (BSUID, "US.", False),
        (PARENT_BSUID, "US.ENT.11815799212886844830", True),
        (PARENT_BSUID, "US.ENT." + "1" * 129, False),
        (PARENT_BSUID, "US.11815799212886844830", False),
    ],
)
def test_identifier_formats(kind, value, ok):
    assert (from_webhook(kind, value) is not None) is ok


def test_identifiers_from_people_accept_formatting_and_keep_bsuids_exact():
    assert parse_human("+683 1234") == Identifier(PHONE, "6831234")
    assert parse_human(" +49 151 1234-5678 ") == Identifier(PHONE, "4915112345678")
    assert parse_human("DE.Ab12") == Identifier(BSUID, "DE.Ab12")
    assert parse_human("DE.ENT.77") == Identifier(PARENT_BSUID, "DE.ENT.77")
    for garbage in ("de.Ab12", "@ana.example", "", "1234567890123456"):
        with pytest.raises(ValueError):
            parse_human(garbage)


def test_new_keys_are_opaque():
    keys = {new_customer_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert looks_like_new_key(key) and len(key) == 22
        with pytest.raises(ValueError):
            parse_human(key)  # never a phone number or a BSUID


# --- linking and merging --------------------------------------------------------------------


def count_identities(**where) -> int:
    with transaction() as conn:
        query = select(func.count()).select_from(customer_identities)
        for column, value in where.items():
            query = query.where(customer_identities.c[column] == value)
        return conn.execute(query).scalar_one()


def test_a_bsuid_only_customer_gets_a_key_and_resolves_by_every_identifier(db_url):
    with transaction() as conn:
        ana = identify(conn, [B1], "first_contact", AT)
        assert looks_like_new_key(ana.key)
        assert resolve(conn, B1.value) == ana
        assert resolve(conn, ana.key) == ana
        assert conversation_id(conn, B1.value) == ana.key
        assert address_of(conn, ana.id) == Address("recipient", B1.value)
        # The same event again: the same customer, nothing added.
        assert identify(conn, [B1], "first_contact", AT) == ana
    assert count_identities() == 1


def test_a_pair_in_one_event_links_phone_and_bsuid_to_one_customer(db_url):
    with transaction() as conn:
        imported, _ = ensure(conn, "+49 151 12345678")
        linked = identify(conn, [P1, B1], "webhook_pair", AT, "wamid.1")
        assert linked == imported
        assert resolve(conn, B1.value) == imported
        assert address_of(conn, imported.id) == Address("to", P1.value)  # a number wins: `to`


def test_a_status_pair_merges_two_customers_into_the_older_one(db_url):
    with transaction() as conn:
        by_phone, _ = ensure(conn, P1.value)
        by_bsuid = identify(conn, [B1], "first_contact", AT)
        survivor = identify(conn, [P1, B1], "status_pair", AT + timedelta(minutes=1), "wamid.s")
        assert survivor == by_phone
        # The merged-away key still resolves, to the survivor.
        assert resolve(conn, by_bsuid.key) == by_phone
        assert conversation_id(conn, by_bsuid.key) == by_phone.key
        merges = conn.execute(select(customer_merges)).all()
        assert [(m.from_customer_id, m.into_customer_id, m.evidence) for m in merges] == [
            (by_bsuid.id, by_phone.id, "status_pair")
        ]
        # Idempotent: every later status carries the same pair.
        assert identify(conn, [P1, B1], "status_pair", AT + timedelta(minutes=2)) == by_phone
        assert conn.execute(select(func.count()).select_from(customer_merges)).scalar_one() == 1
        shown = profile(conn, by_bsuid.key)
    assert shown["key"] == by_phone.key
    assert {(i["kind"], i["value"]) for i in shown["identities"]} == {(PHONE, P1.value), (BSUID, B1.value)}
    assert [m["from_key"] for m in shown["merged"]] == [by_bsuid.key]


def test_a_merge_of_merges_keeps_every_tombstone_one_hop_from_a_live_customer(db_url):
    with transaction() as conn:
        oldest, _ = ensure(conn, P1.value)
        middle = identify(conn, [B1], "first_contact", AT)
        youngest = identify(conn, [B2], "first_contact", AT)
        identify(conn, [B1, B2], "webhook_pair", AT)  # youngest -> middle
        identify(conn, [P1, B1], "status_pair", AT)  # middle (and youngest) -> oldest
        rows = dict(conn.execute(select(customers.c.id, customers.c.merged_into)).all())
    assert rows == {oldest.id: None, middle.id: oldest.id, youngest.id: oldest.id}


def test_an_opt_out_under_a_bsuid_blocks_marketing_to_the_phone_once_linked(db_url):
    with transaction() as conn:
        ensure(conn, P1.value)
        record_opt_out(conn, B1.value, "meta_preferences", None, AT)
        assert may_send_marketing(conn, P1.value)  # no evidence yet that they are one person
        identify(conn, [P1, B1], "status_pair", AT)
        assert not may_send_marketing(conn, P1.value)
        assert not may_send_marketing(conn, B1.value)
        events = profile(conn, P1.value)["consent_history"]
    assert [(e["kind"], e["identifier_kind"], e["identifier_value"]) for e in events] == [
        ("opt_out", BSUID, B1.value)
    ]


def test_an_opt_out_under_the_phone_blocks_the_bsuid_and_repeats_are_history(db_url):
    with transaction() as conn:
        record_opt_out(conn, P1.value, "text", "wamid.1", AT)
        identify(conn, [B1], "first_contact", AT)
        identify(conn, [P1, B1], "webhook_pair", AT)
        assert not may_send_marketing(conn, B1.value)
        again = record_opt_out(conn, B1.value, "meta_preferences", None, AT + timedelta(hours=1))
        assert not again.created and again.message_id == "wamid.1"
        shown = profile(conn, B1.value)
    assert [t["name"] for t in shown["tags"]] == ["OPT_OUT"]
    assert [e["kind"] for e in shown["consent_history"]] == ["opt_out", "opt_out_repeated"]


def test_an_open_request_anywhere_in_the_family_suppresses_and_an_answer_resolves_it(db_url):
    with transaction() as conn:
        ensure(conn, P1.value)
        assert request_opt_out(conn, B1.value, "text", "wamid.stop", AT)
        identify(conn, [P1, B1], "status_pair", AT)
        assert not may_send_marketing(conn, P1.value)
        survivor = resolve(conn, P1.value)
        assert keep_marketing(conn, survivor.key, "wamid.no", AT)
        assert may_send_marketing(conn, P1.value)


def test_a_recycled_number_starts_a_new_customer_without_consent(db_url):
    with transaction() as conn:
        ben = identify(conn, [P1, B1], "webhook_pair", AT)
        record_opt_out(conn, ben.key, "text", "wamid.1", AT)
        rotate(conn, [P1, B1], [P2, B2], AT + timedelta(days=1), "wamid.sys")
        # Months later P1 belongs to somebody else, whose BSUID we have never seen.
        newcomer = identify(conn, [P1, B3], "webhook_pair", AT + timedelta(days=90))
        assert newcomer != ben
        assert may_send_marketing(conn, P1.value)  # the new owner never opted out
        assert not may_send_marketing(conn, P2.value)  # Ben did, under his new number too
        assert resolve(conn, P1.value) == newcomer
        # A late event from Ben's old BSUID is still Ben's.
        assert identify(conn, [B1], "first_contact", AT) == ben


def test_a_rotation_keeps_the_customer_and_is_idempotent(db_url):
    with transaction() as conn:
        ben = identify(conn, [P1, B1, PARENT], "webhook_pair", AT)
        for _ in range(2):
            assert rotate(conn, [P1, B1], [P2, B2], AT + timedelta(days=1), "wamid.sys") == ben
        assert resolve(conn, P2.value) == ben and resolve(conn, B2.value) == ben
        assert resolve(conn, P1.value) == ben  # superseded, still resolvable
        assert address_of(conn, ben.id) == Address("to", P2.value)
    assert count_identities(status="superseded") == 2
    assert count_identities(status="active") == 3


def test_a_bsuid_only_rotation_learns_the_old_id_late(db_url):
    with transaction() as conn:
        ana = identify(conn, [B2], "first_contact", AT)  # new BSUID seen before the notice
        assert rotate(conn, [B1], [B2], AT) == ana
        assert resolve(conn, B1.value) == ana
        assert address_of(conn, ana.id) == Address("recipient", B2.value)


# --- database guards ------------------------------------------------------------------------


def refused(sql: str) -> str:
    with pytest.raises(IntegrityError) as error, get_engine().begin() as conn:
        conn.execute(text(sql))
    return str(error.value.orig)


@pytest.fixture
def family(db_url) -> tuple[int, int]:
    """An opted-out customer with a merged-in half: (survivor id, merged-away id)."""
    with transaction() as conn:
        survivor, _ = ensure(conn, P1.value)
        other = identify(conn, [B1], "first_contact", AT)
        record_opt_out(conn, B1.value, "meta_preferences", None, AT)
        identify(conn, [P1, B1], "status_pair", AT)
    return survivor.id, other.id


def test_identities_can_be_neither_deleted_nor_moved_nor_reactivated(family):
    survivor, other = family
    assert "never deleted or moved" in refused("DELETE FROM customer_identities")
    refused(f"UPDATE customer_identities SET customer_id = {other} WHERE customer_id = {survivor}")
    refused("UPDATE customer_identities SET value = '4900000000' WHERE kind = 'phone'")
    refused("UPDATE customer_identities SET kind = 'bsuid' WHERE kind = 'phone'")
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE customer_identities SET status = 'superseded' WHERE kind = 'phone'"))
    refused("UPDATE customer_identities SET status = 'active' WHERE kind = 'phone'")


def test_merges_stay_and_opted_out_families_cannot_be_deleted(family):
    survivor, other = family
    assert "stays merged" in refused(f"UPDATE customers SET merged_into = NULL WHERE id = {other}")
    refused("DELETE FROM customer_merges")
    refused("UPDATE customer_merges SET into_customer_id = from_customer_id")
    refused(f"UPDATE customers SET key = 'c_stolen' WHERE id = {survivor}")
    # The OPT_OUT tag is the merged-away customer's; the survivor is protected by it as well.
    for customer_id in (survivor, other):
        assert "OPT_OUT" in refused(f"DELETE FROM customers WHERE id = {customer_id}")


def test_sqlite_replace_cannot_sneak_past_the_guards(sqlite_url):
    with transaction() as conn:
        customer = identify(conn, [P1, B1], "webhook_pair", AT)
        record_opt_out(conn, customer.key, "text", "wamid.1", AT)
        other = identify(conn, [B2], "first_contact", AT)
    with get_engine().begin() as conn:
        # REPLACE would delete the conflicting row without firing a delete trigger: it is skipped.
        conn.execute(
            text(
                "INSERT OR REPLACE INTO customer_identities"
                " (customer_id, kind, value, status, evidence, first_seen_at, last_seen_at)"
                f" VALUES ({other.id}, 'phone', '{P1.value}', 'active', 'import', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(text(f"INSERT OR REPLACE INTO customers (id, key) VALUES ({customer.id}, 'c_x')"))
    refused(f"UPDATE OR REPLACE customer_identities SET value = '{B1.value}' WHERE value = '{B2.value}'")
    with transaction() as conn:
        assert resolve(conn, P1.value) == customer
        assert not may_send_marketing(conn, P1.value)
