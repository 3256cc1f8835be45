"""The customer store on SQLite and PostgreSQL: what it records, and what the database refuses."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot.consent import OPT_OUT
from bot.db import get_engine, transaction
from bot.migrations import alembic_config, upgrade
from bot.schema import consent_events, customers, tags
from bot.store.customers import profile, touch_customer
from bot.store.identities import create_customer
from bot.store.tags import (
    OptOutRecord,
    add_tag,
    iter_opt_outs,
    normalise_tag_name,
    record_consent_event,
    record_opt_out,
)

WA_ID = "16505551234"
AT = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


def count(table, **where) -> int:
    with transaction() as conn:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return conn.execute(query).scalar_one()


def history() -> list[tuple[str, str, str | None]]:
    with transaction() as conn:
        found = profile(conn, WA_ID)
    assert found is not None
    return [(e["kind"], e["source"], e["message_id"]) for e in found["consent_history"]]


def refused(sql: str) -> str:
    """Run raw SQL as a console session would; the database's refusal message."""
    with pytest.raises(IntegrityError) as error, get_engine().begin() as conn:
        conn.execute(text(sql))
    return str(error.value.orig)


@pytest.fixture
def opted_out(db_url) -> int:
    """A customer with an OPT_OUT tag, a VIP tag and some consent history; their id."""
    with transaction() as conn:
        customer_id = touch_customer(conn, WA_ID, "Ada", AT)
        add_tag(conn, WA_ID, "VIP", "import", None, AT)
        record_opt_out(conn, WA_ID, "text", "wamid.1", AT)
    return customer_id


# --- the database itself guards opt-outs and the history ---


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE tags SET source = 'import' WHERE name = 'OPT_OUT'",
        "UPDATE tags SET added_at = NULL WHERE name = 'OPT_OUT'",
        "UPDATE tags SET name = 'FORMER_OPT_OUT' WHERE name = 'OPT_OUT'",
        "UPDATE tags SET customer_id = customer_id WHERE name = 'OPT_OUT'",
        "DELETE FROM tags WHERE name = 'OPT_OUT'",
        "DELETE FROM tags",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_opt_out(opted_out, sql):
    assert "OPT_OUT" in refused(sql)
    with transaction() as conn:
        assert profile(conn, WA_ID)["tags"][1] == {
            "name": OPT_OUT,
            "added_at": AT.isoformat(),
            "source": "text",
            "message_id": "wamid.1",
        }


def test_the_database_refuses_to_turn_another_tag_into_an_opt_out(opted_out):
    # It would give the opt-out a made-up time and source (and, on SQLite, replace the real one).
    assert "OPT_OUT" in refused("UPDATE tags SET name = 'OPT_OUT' WHERE name = 'VIP'")


def test_other_tags_stay_editable(opted_out):
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE tags SET source = 'text' WHERE name = 'VIP'"))
        conn.execute(text("DELETE FROM tags WHERE name = 'VIP'"))
    assert count(tags) == 1


def test_the_database_refuses_to_delete_an_opted_out_customer_or_change_their_number(opted_out):
    assert "cannot be deleted" in refused("DELETE FROM customers")
    assert "never change" in refused("UPDATE customers SET key = 'c_another'")
    assert "never change" in refused(f"UPDATE customers SET id = {opted_out + 100}")
    # Their number is an identity, which never moves or changes (tests/test_identities.py).
    assert "never deleted or moved" in refused(f"UPDATE customer_identities SET value = '{WA_ID}0'")
    assert count(customers, id=opted_out) == 1


def test_a_customer_without_an_opt_out_can_be_deleted(db_url):
    # Only without identities, though: those are never deleted (they are consent evidence).
    with transaction() as conn:
        create_customer(conn, "Nobody")
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM customers"))
    assert count(customers) == 0


@pytest.mark.parametrize("sql", ["UPDATE consent_events SET detail = 'edited'", "DELETE FROM consent_events"])
def test_the_database_refuses_to_change_or_delete_consent_history(opted_out, sql):
    with transaction() as conn:
        record_consent_event(conn, WA_ID, "resume", "meta_preferences", None, None, AT)
    assert "append-only" in refused(sql)
    assert count(consent_events) == 2


# SQLite has no TRUNCATE (its DELETE is guarded row by row): PostgreSQL only.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("table", ["tags", "consent_events", "customers"])
def test_postgresql_refuses_to_truncate_the_store(opted_out, db_url, table):
    assert "cannot be truncated" in refused(f"TRUNCATE {table} CASCADE")
    assert count(tags, name=OPT_OUT) == 1


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT OR REPLACE INTO tags (customer_id, name, added_at, source)"
        " SELECT id, 'OPT_OUT', '2030-01-01 00:00:00.000000', 'import' FROM customers",
        "INSERT OR REPLACE INTO customers (key, name) SELECT key, 'Mallory' FROM customers",
        "REPLACE INTO consent_events (id, customer_id, kind, source, occurred_at, recorded_at)"
        " SELECT id, customer_id, 'resume', 'import', occurred_at, recorded_at FROM consent_events",
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_replace_cannot_sneak_past_the_delete_guards(opted_out, db_url, sql):
    # REPLACE deletes the conflicting row without firing delete triggers; the insert is skipped.
    before = history()
    with get_engine().begin() as conn:
        conn.execute(text(sql))
    with transaction() as conn:
        found = profile(conn, WA_ID)
    assert found["name"] == "Ada"
    assert found["tags"][1]["added_at"] == AT.isoformat()
    assert history() == before


def test_downgrade_refuses_while_the_store_holds_consent_records(opted_out, db_url):
    with pytest.raises(RuntimeError, match="refusing to drop the customer store"):
        command.downgrade(alembic_config(db_url), "0001")
    assert count(tags, name=OPT_OUT) == 1


def test_an_empty_store_downgrades_and_upgrades_again(db_url):
    command.downgrade(alembic_config(db_url), "0001")
    upgrade(db_url)
    with transaction() as conn:
        assert record_opt_out(conn, WA_ID, "text", "wamid.1", AT).created
    assert "OPT_OUT" in refused("DELETE FROM tags")


# --- customers ---


def test_touch_creates_a_customer_and_keeps_first_and_latest_sightings(db_url):
    with transaction() as conn:
        customer_id = touch_customer(conn, "+1 650 555 1234", "Ada", AT)
        assert touch_customer(conn, WA_ID, None, AT + timedelta(hours=2)) == customer_id
        touch_customer(conn, WA_ID, "Old name", AT + timedelta(hours=1))  # processed late
        touch_customer(conn, WA_ID, None, AT - timedelta(hours=1))  # older still
        found = profile(conn, WA_ID)
    assert found["first_seen_at"] == (AT - timedelta(hours=1)).isoformat()
    assert found["last_seen_at"] == (AT + timedelta(hours=2)).isoformat()
    assert found["name"] == "Ada"
    with transaction() as conn:
        touch_customer(conn, WA_ID, "Ada L.", AT + timedelta(hours=3))
        assert profile(conn, WA_ID)["name"] == "Ada L."


def test_times_are_stored_in_utc_and_naive_ones_are_refused(db_url):
    paris = timezone(timedelta(hours=2))
    with transaction() as conn:
        touch_customer(conn, WA_ID, None, datetime(2024, 5, 1, 12, 0, tzinfo=paris))
        assert profile(conn, WA_ID)["last_seen_at"] == "2024-05-01T10:00:00+00:00"
        with pytest.raises(ValueError, match="naive"):
            touch_customer(conn, WA_ID, None, datetime(2024, 5, 1, 12, 0))


def test_a_customer_known_only_from_consent_has_no_sightings(db_url):
    with transaction() as conn:
        record_opt_out(conn, WA_ID, "meta_preferences", None, AT, name="Ada")
        found = profile(conn, WA_ID)
    assert (found["name"], found["first_seen_at"], found["last_seen_at"]) == ("Ada", None, None)


def test_invalid_numbers_are_refused_everywhere(db_url):
    with transaction() as conn:
        for call in (
            lambda: touch_customer(conn, "12345", None, AT),
            lambda: record_opt_out(conn, "0612345678", "text", "wamid.1", AT),
            lambda: profile(conn, "abc"),
        ):
            with pytest.raises(ValueError, match="international form"):
                call()


# --- opt-outs ---


def test_record_opt_out_keeps_the_first_time_and_source(db_url):
    with transaction() as conn:
        first = record_opt_out(conn, WA_ID, "text", "wamid.1", AT, name="Ada", detail="STOP")
    later = AT + timedelta(days=1)
    with transaction() as conn:
        again = record_opt_out(conn, WA_ID, "meta_preferences", None, later)
        # An earlier time arriving late does not rewrite the tag either.
        earlier = record_opt_out(conn, WA_ID, "button", "wamid.0", AT - timedelta(days=1))
    assert first.created and not again.created and not earlier.created
    for result in (first, again, earlier):
        assert (result.added_at, result.source, result.message_id) == (AT, "text", "wamid.1")
    assert count(tags, name=OPT_OUT) == 1
    assert history() == [
        ("opt_out_repeated", "button", "wamid.0"),
        ("opt_out", "text", "wamid.1"),
        ("opt_out_repeated", "meta_preferences", None),
    ]


def test_a_redelivered_webhook_adds_nothing_at_all(db_url):
    with transaction() as conn:
        record_opt_out(conn, WA_ID, "text", "wamid.1", AT)
        record_opt_out(conn, WA_ID, "template", "wamid.2", AT + timedelta(minutes=1))
        # Meta's user_preferences notices have no message id: source and time identify them.
        record_opt_out(conn, WA_ID, "meta_preferences", None, AT + timedelta(minutes=2))
        record_consent_event(conn, WA_ID, "resume", "meta_preferences", None, None, AT + timedelta(minutes=3))
    before = history()
    assert len(before) == 4
    with transaction() as conn:
        assert not record_opt_out(conn, WA_ID, "text", "wamid.1", AT).created
        record_opt_out(conn, WA_ID, "template", "wamid.2", AT + timedelta(minutes=1))
        record_opt_out(conn, WA_ID, "meta_preferences", None, AT + timedelta(minutes=2))
        assert not record_consent_event(
            conn, WA_ID, "resume", "meta_preferences", None, None, AT + timedelta(minutes=3)
        )
    assert history() == before
    assert count(tags) == 1


@pytest.mark.parametrize("same_message", [False, True], ids=["eight-messages", "one-redelivered"])
def test_concurrent_opt_outs_add_exactly_one_tag(db_url, same_message):
    threads = 8
    start = threading.Barrier(threads)
    results, errors = [], []

    def confirm(i: int) -> None:
        try:
            start.wait()
            message_id = "wamid.same" if same_message else f"wamid.{i}"
            with transaction() as conn:
                results.append(record_opt_out(conn, WA_ID, "text", message_id, AT + timedelta(seconds=i)))
        except Exception as error:  # collected: an exception in a thread would vanish
            errors.append(error)

    workers = [threading.Thread(target=confirm, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sorted(r.created for r in results) == [False] * (threads - 1) + [True]
    winner = next(r for r in results if r.created)
    assert {(r.added_at, r.source, r.message_id) for r in results} == {
        (winner.added_at, winner.source, winner.message_id)
    }
    # One live customer: a thread that lost the race to create them left an empty tombstone
    # merged into the winner (customers are never deleted), holding nothing.
    assert count(customers, merged_into=None) == 1
    assert count(tags, name=OPT_OUT) == 1
    assert count(consent_events, kind="opt_out") == 1
    assert count(consent_events, kind="opt_out_repeated") == (0 if same_message else threads - 1)


def test_resume_is_history_and_the_opt_out_stays(db_url):
    with transaction() as conn:
        record_opt_out(conn, WA_ID, "meta_preferences", None, AT)
        added = record_consent_event(
            conn, WA_ID, "resume", "meta_preferences", None, "resumed in WhatsApp", AT + timedelta(hours=1)
        )
        found = profile(conn, WA_ID)
    assert added
    assert [t["name"] for t in found["tags"]] == [OPT_OUT]
    assert found["marketing_allowed"] is False
    assert found["consent_history"][-1]["kind"] == "resume"
    assert found["consent_history"][-1]["detail"] == "resumed in WhatsApp"


@pytest.mark.parametrize("kind", ["opt_out", "opt_out_repeated"])
def test_an_opt_out_event_without_its_tag_is_refused(db_url, kind):
    with transaction() as conn, pytest.raises(ValueError, match="record_opt_out"):
        record_consent_event(conn, WA_ID, kind, "text", "wamid.1", None, AT)


def test_unknown_sources_and_kinds_are_refused(db_url):
    with transaction() as conn:
        with pytest.raises(ValueError, match="unknown source"):
            record_opt_out(conn, WA_ID, "email", None, AT)
        with pytest.raises(ValueError, match="kind"):
            record_consent_event(conn, WA_ID, "Resume!", "text", None, None, AT)


# --- other tags, profile, export ---


def test_add_tag_normalises_and_keeps_the_first(db_url):
    with transaction() as conn:
        assert add_tag(conn, WA_ID, "vip", "import", None, AT)
        assert not add_tag(conn, WA_ID, " VIP ", "text", "wamid.9", AT + timedelta(days=1))
        found = profile(conn, WA_ID)
    assert found["tags"] == [
        {"name": "VIP", "added_at": AT.isoformat(), "source": "import", "message_id": None}
    ]
    assert found["marketing_allowed"] is True
    assert found["consent_history"] == []


@pytest.mark.parametrize("name", ["OPT_OUT", "opt-out", "Opt Out"])
def test_add_tag_sends_opt_outs_to_record_opt_out(db_url, name):
    with transaction() as conn, pytest.raises(ValueError, match="record_opt_out"):
        add_tag(conn, WA_ID, name, "import", None, AT)
    assert count(tags) == 0


def test_tag_names_are_normalised_or_refused():
    assert normalise_tag_name(" opt-out ") == OPT_OUT
    assert normalise_tag_name("big  spender") == "BIG_SPENDER"
    for bad in ("", "V.I.P.", "x" * 65):
        with pytest.raises(ValueError, match="invalid tag"):
            normalise_tag_name(bad)


def test_profile_of_an_unknown_number_is_none(db_url):
    with transaction() as conn:
        assert profile(conn, WA_ID) is None


def test_profile_has_tags_with_when_and_how_and_the_consent_history(opted_out):
    with transaction() as conn:
        found = profile(conn, WA_ID)
    recorded_at = found["consent_history"][0].pop("recorded_at")
    assert datetime.fromisoformat(recorded_at).tzinfo is not None
    key = found.pop("key")
    identities = found.pop("identities")
    assert [(i["kind"], i["value"], i["status"], i["customer_key"]) for i in identities] == [
        ("phone", WA_ID, "active", key)
    ]
    assert found == {
        "wa_id": WA_ID,
        "name": "Ada",
        "username": None,
        "language": None,
        "merged": [],
        "first_seen_at": AT.isoformat(),
        "last_seen_at": AT.isoformat(),
        "erased_at": None,
        "marketing_allowed": False,
        "suppressed": False,
        "opt_out_request": None,
        "tags": [
            {"name": "VIP", "added_at": AT.isoformat(), "source": "import", "message_id": None},
            {"name": OPT_OUT, "added_at": AT.isoformat(), "source": "text", "message_id": "wamid.1"},
        ],
        "consent_history": [
            {
                "kind": "opt_out",
                "source": "text",
                "message_id": "wamid.1",
                "detail": None,
                "occurred_at": AT.isoformat(),
                "identifier_kind": "phone",
                "identifier_value": WA_ID,
                "customer_key": key,
                "evidence": {
                    "language": None,
                    "request": {"words": None, "at": None, "message_id": None},
                    "question": None,
                    "answer": None,
                },
            }
        ],
    }


def test_iter_opt_outs_streams_every_opt_out_oldest_first(db_url):
    with transaction() as conn:
        record_opt_out(conn, "447700900123", "meta_131050", "wamid.b", AT + timedelta(hours=1))
        record_opt_out(conn, WA_ID, "text", "wamid.a", AT)
        add_tag(conn, "33333333333", "VIP", "import", None, AT)
    with transaction() as conn:
        found = list(iter_opt_outs(conn))
        keys = [profile(conn, number)["key"] for number in (WA_ID, "447700900123")]
    # Recorded without evidence (a store call, like Meta's notices): its parts are empty.
    no_evidence = {
        "language": None,
        "request": {"words": None, "at": None, "message_id": None},
        "question": None,
        "answer": None,
    }
    assert found == [
        OptOutRecord(keys[0], WA_ID, (f"phone:{WA_ID}",), AT, "text", "wamid.a", no_evidence),
        OptOutRecord(
            keys[1],
            "447700900123",
            ("phone:447700900123",),
            AT + timedelta(hours=1),
            "meta_131050",
            "wamid.b",
            no_evidence,
        ),
    ]


def test_a_resume_at_the_same_instant_as_the_stop_is_still_recorded(db_url):
    # Meta's preference notices carry no message id: dedupe is per kind, source and instant, so a
    # redelivered "stop" adds nothing but a "resume" in the same second is a new event.
    with transaction() as conn:
        record_opt_out(conn, WA_ID, "meta_preferences", None, AT)
        record_opt_out(conn, WA_ID, "meta_preferences", None, AT)
        assert record_consent_event(conn, WA_ID, "resume", "meta_preferences", None, None, AT)
        found = profile(conn, WA_ID)
    assert [e["kind"] for e in found["consent_history"]] == ["opt_out", "resume"]
