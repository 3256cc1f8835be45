"""`python -m bot customers ...` for customers known by a BSUID: the `user_id` column of an import
(and what a row with a number and a BSUID may link), `show` by any identifier, and the export."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

from sqlalchemy import func, select

from bot.cli import main
from bot.consent import OPT_OUT
from bot.db import transaction
from bot.schema import consent_events, customer_identities, customers, tags
from bot.store.customer_import import Holding, link_problem, parse_customer_csv
from bot.store.identifiers import Identifier
from bot.store.identities import identify, resolve, rotate
from bot.store.tags import record_opt_out

AT = datetime(2026, 9, 1, 10, 0, tzinfo=timezone.utc)
PHONE = "16505551234"
BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
OTHER_BSUID = "US.99999999999999999999"


def phone(value: str) -> Identifier:
    return Identifier("phone", value)


def bsuid(value: str) -> Identifier:
    return Identifier("bsuid", value)


def run_import(tmp_path, content: str, capsys) -> tuple[int, str, str]:
    path = tmp_path / "customers.csv"
    path.write_text(content, encoding="utf-8")
    code = main(["customers", "import", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def show(raw: str, capsys) -> dict:
    assert main(["customers", "show", raw]) == 0
    return json.loads(capsys.readouterr().out)


def identities(found: dict) -> list[tuple[str, str, str, str]]:
    return sorted((i["kind"], i["value"], i["status"], i["evidence"]) for i in found["identities"])


def count(table) -> int:
    with transaction() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# --- parsing (pure) ---


def test_the_user_id_column_takes_bsuids_and_parent_bsuids_exactly():
    rows, problems = parse_customer_csv(
        io.StringIO(f"user_id,wa_id,name\n{BSUID},,Ana\n{PARENT},+1 650 555 1234,\n")
    )
    assert problems == []
    assert [(row.line, row.identifiers, row.name) for row in rows] == [
        (2, (bsuid(BSUID),), "Ana"),
        (3, (phone(PHONE), Identifier("parent_bsuid", PARENT)), None),
    ]


def test_a_user_id_column_alone_is_a_valid_header():
    rows, problems = parse_customer_csv(io.StringIO(f"user_id\n{BSUID}\n"))
    assert (len(rows), problems) == (1, [])


def test_bad_user_ids_are_reported_with_their_line():
    _, problems = parse_customer_csv(
        io.StringIO(
            "phone,user_id\n"
            f"{PHONE},16505559999\n"  # a phone number is not a BSUID
            ",us.13491208655302741918\n"  # lower-case country: Meta never sends it
            f",US.{'1' * 129}\n"  # longer than 128
            ",@ana.example\n"  # a username is no identifier
            ",\n"
            f",{BSUID}\n"
            f"447700900123,{BSUID}\n"  # the same BSUID twice
            ",,\n"  # blank: skipped
        )
    )
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (2, "invalid user_id"),
        (3, "invalid user_id"),
        (4, "invalid user_id"),
        (5, "invalid user_id"),
        (8, "duplicate user_id (first on line 7)"),
    ]


def test_a_row_with_neither_identifier_is_a_problem():
    _, problems = parse_customer_csv(io.StringIO(f"phone,user_id,name\n,,Ada\n{PHONE},,\n"))
    assert [(p.line, p.message) for p in problems] == [(2, "missing identifier")]


def test_link_decisions():
    x, y = Holding(1, True), Holding(2, True)
    assert link_problem(2, [None]) is None
    assert link_problem(2, [Holding(1, False)]) is None  # a lone former number names its customer
    assert link_problem(2, [None, None]) is None
    assert link_problem(2, [x, None]) is None
    assert link_problem(2, [None, x]) is None
    assert link_problem(2, [x, x]) is None
    assert "two different customers" in link_problem(2, [x, y]).message
    assert "former identifier" in link_problem(2, [Holding(1, False), None]).message
    assert "former identifier" in link_problem(2, [Holding(1, False), x]).message


# --- import ---


def test_a_username_customer_is_imported_by_bsuid_alone(db_url, tmp_path, capsys):
    code, out, _ = run_import(tmp_path, f"user_id,name,tags\n{BSUID},Ana,VIP;opt-out\n", capsys)
    assert code == 0
    assert "1 created, 0 updated, 1 opt-outs recorded" in out
    found = show(BSUID, capsys)
    assert (found["name"], found["wa_id"], found["marketing_allowed"]) == ("Ana", None, False)
    assert identities(found) == [("bsuid", BSUID, "active", "import")]
    [event] = found["consent_history"]
    assert (event["source"], event["identifier_kind"], event["identifier_value"]) == (
        "import",
        "bsuid",
        BSUID,
    )


def test_a_row_with_both_gives_a_new_customer_both(db_url, tmp_path, capsys):
    code, out, _ = run_import(tmp_path, f"wa_id,user_id\n{PHONE},{BSUID}\n", capsys)
    assert code == 0
    assert "1 created, 0 updated" in out
    assert show(PHONE, capsys)["key"] == show(BSUID, capsys)["key"]
    assert identities(show(PHONE, capsys)) == [
        ("bsuid", BSUID, "active", "import"),
        ("phone", PHONE, "active", "import"),
    ]


def test_a_row_attaches_the_identifier_nobody_has_to_the_customer_who_has_the_other(db_url, tmp_path, capsys):
    with transaction() as conn:
        record_opt_out(conn, PHONE, "text", "wamid.1", AT)
    code, out, _ = run_import(tmp_path, f"phone,user_id,name\n{PHONE},{BSUID},Ada\n", capsys)
    assert code == 0
    assert "0 created, 1 updated" in out and "1 identifiers linked" in out
    found = show(BSUID, capsys)
    assert (found["name"], found["wa_id"], found["marketing_allowed"]) == ("Ada", PHONE, False)
    assert count(customers) == 1


def test_a_row_naming_two_customers_is_a_conflict_and_nothing_is_imported(db_url, tmp_path, capsys):
    with transaction() as conn:
        identify(conn, [phone(PHONE)], "first_contact", AT)
        identify(conn, [bsuid(BSUID)], "first_contact", AT)
    before = (count(customers), count(customer_identities))
    code, out, err = run_import(
        tmp_path, f"phone,user_id,tags\n447700900123,,VIP\n{PHONE},{BSUID},OPT_OUT\n", capsys
    )
    assert (code, out) == (1, "")
    assert "line 3: conflict: the number and the user_id belong to two different customers" in err
    assert err.splitlines()[-1].endswith("1 problem(s); nothing imported")
    assert (count(customers), count(customer_identities), count(tags)) == (*before, 0)
    with transaction() as conn:
        assert resolve(conn, PHONE) != resolve(conn, BSUID)  # not merged on a CSV's word


def test_a_former_number_is_never_linked_again_by_a_file(db_url, tmp_path, capsys):
    with transaction() as conn:
        identify(conn, [phone(PHONE), bsuid(BSUID)], "webhook_pair", AT)
        # They changed number: the old one (and the old BSUID) are superseded, maybe reissued.
        rotate(conn, [phone(PHONE), bsuid(BSUID)], [phone("16505559999"), bsuid(OTHER_BSUID)], AT)
    code, _, err = run_import(tmp_path, f"phone,user_id\n{PHONE},US.55555555555555555555\n", capsys)
    assert code == 1
    assert "line 2: conflict: the number or user_id is a customer's former identifier" in err
    assert count(customers) == 1


def test_a_row_whose_identifiers_one_customer_has_changes_no_identity(db_url, tmp_path, capsys):
    with transaction() as conn:
        identify(conn, [phone(PHONE), bsuid(BSUID)], "webhook_pair", AT)
    code, out, _ = run_import(tmp_path, f"wa_id,user_id,tags\n{PHONE},{BSUID},LEAD\n", capsys)
    assert code == 0
    assert "0 created, 1 updated" in out and "0 identifiers linked" in out
    assert identities(show(PHONE, capsys)) == [
        ("bsuid", BSUID, "active", "webhook_pair"),
        ("phone", PHONE, "active", "webhook_pair"),
    ]
    assert [t["name"] for t in show(BSUID, capsys)["tags"]] == ["LEAD"]


# --- show ---


def test_show_finds_a_customer_by_every_identifier_and_lists_identities_and_merges(db_url, capsys):
    with transaction() as conn:
        record_opt_out(conn, BSUID, "meta_preferences", None, AT)  # a phone-less customer stops
        identify(conn, [phone(PHONE)], "first_contact", AT)  # the number writes, separately
        # A status of a message to the number carries both: Meta says they are one user.
        identify(conn, [phone(PHONE), bsuid(BSUID), Identifier("parent_bsuid", PARENT)], "status_pair", AT)
        keys = conn.execute(select(customers.c.key).order_by(customers.c.id)).scalars().all()
    views = [show(raw, capsys) for raw in (PHONE, "+1 (650) 555-1234", BSUID, PARENT, keys[0], keys[1])]
    assert all(view == views[0] for view in views)  # the merged-away key shows the survivor
    found = views[0]
    assert (found["key"], found["wa_id"], found["marketing_allowed"]) == (keys[0], PHONE, False)
    assert identities(found) == [
        ("bsuid", BSUID, "active", "import"),
        ("parent_bsuid", PARENT, "active", "status_pair"),
        ("phone", PHONE, "active", "first_contact"),
    ]
    assert [(m["from_key"], m["into_key"], m["evidence"]) for m in found["merged"]] == [
        (keys[1], keys[0], "status_pair")
    ]
    assert [(t["name"], t["source"]) for t in found["tags"]] == [(OPT_OUT, "meta_preferences")]
    assert [(e["kind"], e["identifier_value"]) for e in found["consent_history"]] == [("opt_out", BSUID)]


# --- export-opt-outs ---


def test_the_export_lists_every_identifier_of_each_customer(db_url, capsys):
    with transaction() as conn:
        record_opt_out(conn, BSUID, "meta_preferences", None, AT)
        identify(conn, [phone(PHONE), bsuid(BSUID)], "status_pair", AT.replace(hour=11))
        rotate(
            conn,
            [phone(PHONE), bsuid(BSUID)],
            [phone("16505559999"), bsuid(OTHER_BSUID)],
            AT.replace(hour=12),
        )
        record_opt_out(conn, PARENT, "import", None, AT.replace(hour=13))
        keys = conn.execute(select(customers.c.key).order_by(customers.c.id)).scalars().all()
    assert main(["customers", "export-opt-outs"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["customer_key"] for row in rows] == keys
    first, second = rows
    assert (first["wa_id"], first["user_id"], first["parent_user_id"]) == ("16505559999", OTHER_BSUID, "")
    assert sorted(first["identifiers"].split()) == [f"bsuid:{OTHER_BSUID}", "phone:16505559999"]
    assert sorted(first["former_identifiers"].split()) == [f"bsuid:{BSUID}", f"phone:{PHONE}"]
    assert (first["opted_out_at"], first["source"], first["message_id"]) == (
        "2026-09-01T10:00:00+00:00",
        "meta_preferences",
        "",
    )
    assert (second["wa_id"], second["user_id"], second["parent_user_id"]) == ("", "", PARENT)
    assert (second["identifiers"], second["former_identifiers"]) == (f"parent_bsuid:{PARENT}", "")
    assert count(consent_events) == 2
