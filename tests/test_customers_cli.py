"""`python -m bot customers ...` in-process: import, show and export-opt-outs."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.consent import OPT_OUT
from bot.db import transaction
from bot.schema import consent_events, customers, tags
from bot.store.customer_import import ImportRow, Problem, parse_customer_csv
from bot.store.identifiers import Identifier
from bot.store.tags import iter_opt_outs, record_opt_out

AT = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


def write_csv(tmp_path, content: str, name: str = "customers.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_text(content, encoding=encoding)
    return path


def rows_in(table) -> int:
    with transaction() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def phone(value: str) -> Identifier:
    return Identifier("phone", value)


def show(wa_id: str, capsys) -> dict:
    assert main(["customers", "show", wa_id]) == 0
    return json.loads(capsys.readouterr().out)


# --- parsing (pure) ---


def test_parse_normalises_numbers_names_and_tags():
    rows, problems = parse_customer_csv(
        io.StringIO(
            " Phone ,NAME,Tags\n"
            "+1 (650) 555-1234, Ada ,vip; opt-out\n"
            "\n"
            ",,\n"  # blank rows are skipped
            "44 7700-900123,,LEAD|VIP|lead\n"
            "33612345678\n"  # short row: the missing fields are empty
        )
    )
    assert problems == []
    assert rows == [
        ImportRow(2, (phone("16505551234"),), "Ada", ("VIP", OPT_OUT)),
        ImportRow(5, (phone("447700900123"),), None, ("LEAD", "VIP")),
        ImportRow(6, (phone("33612345678"),), None, ()),
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", [Problem(1, "empty file: expected a header row")]),
        ("wa_id,name,email\n16505551234,Ada,a@example.com\n", [1]),
        ("name,tags\nAda,VIP\n", [1]),
        ("wa_id,phone\n16505551234,16505551234\n", [1]),
        ("wa_id,name,name\n16505551234,Ada,Ada\n", [1]),
        ("wa_id,name\n16505551234,Ada,extra\n", [2]),
        ('wa_id,name\n16505551234,"Ada\n447700900123,Bob\n', [3]),
        ('wa_id,name\n16505551234,"Ada\n447700900123,"Bob"\n', [3]),
        ('wa_id,name\n16505551234,"Ada\nLovelace"\n', [3]),
    ],
    ids=[
        "empty",
        "unknown-column",
        "no-number",
        "two-numbers",
        "repeated",
        "extra-value",
        "unbalanced-quote",
        "quote-in-field",
        "multi-line-value",
    ],
)
def test_parse_reports_file_problems(content, expected):
    rows, problems = parse_customer_csv(io.StringIO(content))
    assert rows == []
    if all(isinstance(item, int) for item in expected):
        assert [p.line for p in problems] == expected
    else:
        assert problems == expected


# --- import ---


def test_import_creates_and_updates_customers_in_one_go(db_url, tmp_path, capsys):
    with transaction() as conn:
        record_opt_out(conn, "447700900123", "text", "wamid.1", AT)
    path = write_csv(
        tmp_path,
        "phone,name,tags\n+1 650 555 1234,Ada,VIP\n447700900123,Grace,OPT_OUT\n33612345678,,opt-out|LEAD\n",
    )
    assert main(["customers", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 customers" in out
    assert "2 created, 1 updated, 1 opt-outs recorded (1 already opted out)" in out

    ada = show("16505551234", capsys)
    assert (ada["name"], ada["marketing_allowed"], ada["first_seen_at"]) == ("Ada", True, None)
    assert [(t["name"], t["source"]) for t in ada["tags"]] == [("VIP", "import")]

    grace = show("447700900123", capsys)
    assert grace["name"] == "Grace"
    assert grace["tags"][0]["source"] == "text"  # the first opt-out is the one kept
    assert [e["kind"] for e in grace["consent_history"]] == ["opt_out", "opt_out_repeated"]


def test_an_opt_out_in_the_file_is_an_opt_out_with_source_import(db_url, tmp_path, capsys):
    path = write_csv(tmp_path, "wa_id,tags\n33612345678,opt_out\n")
    assert main(["customers", "import", str(path)]) == 0
    capsys.readouterr()
    found = show("33612345678", capsys)
    assert found["marketing_allowed"] is False
    assert [(t["name"], t["source"], t["message_id"]) for t in found["tags"]] == [(OPT_OUT, "import", None)]
    [event] = found["consent_history"]
    assert (event["kind"], event["source"], event["detail"]) == (
        "opt_out",
        "import",
        "customers.csv line 2",
    )


def test_a_bad_file_is_reported_line_by_line_and_nothing_is_imported(db_url, tmp_path, capsys):
    path = write_csv(
        tmp_path,
        "wa_id,name,tags\n"
        "16505551234,Ada,OPT_OUT\n"  # fine, but must not be imported either
        "12345,Bob,\n"  # too short
        ",Carol,\n"  # missing
        "+1 650-555-1234,Ada again,\n"  # the same number as line 2
        "0612345678,Dan,\n"  # national format
        "447700900123,Eve,V.I.P.\n",  # invalid tag
    )
    assert main(["customers", "import", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [line.split(": ")[1] for line in lines[:-1]] == [
        "line 3",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
    ]
    assert "invalid phone number" in lines[0]
    assert "missing phone number" in lines[1]
    assert "first on line 2" in lines[2]
    assert "invalid tag" in lines[4]
    assert lines[-1].endswith("5 problem(s); nothing imported")
    assert "12345" not in captured.err  # numbers are personal data: not echoed
    assert (rows_in(customers), rows_in(tags), rows_in(consent_events)) == (0, 0, 0)


def test_an_unknown_column_rejects_the_file(db_url, tmp_path, capsys):
    path = write_csv(tmp_path, "wa_id,name,email\n16505551234,Ada,ada@example.com\n")
    assert main(["customers", "import", str(path)]) == 1
    assert "line 1: unknown column(s) 'email'" in capsys.readouterr().err
    assert rows_in(customers) == 0


def test_a_spreadsheet_byte_order_mark_is_not_part_of_the_header(db_url, tmp_path, capsys):
    path = write_csv(tmp_path, "wa_id,name\n16505551234,Zoë\n", encoding="utf-8-sig")
    assert main(["customers", "import", str(path)]) == 0
    capsys.readouterr()
    assert show("16505551234", capsys)["name"] == "Zoë"


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"wa_id\n\xff\xfe\n", "not UTF-8"), (None, "cannot read")],
    ids=["not-utf8", "missing"],
)
def test_an_unreadable_file_is_an_error(db_url, tmp_path, capsys, content, message):
    path = tmp_path / "customers.csv"
    if content is not None:
        path.write_bytes(content)
    assert main(["customers", "import", str(path)]) == 1
    assert message in capsys.readouterr().err


# --- show ---


def test_show_prints_the_profile_as_json(db_url, capsys):
    with transaction() as conn:
        record_opt_out(conn, "16505551234", "template", "wamid.1", AT, name="Ada")
    found = show("+1 650 555 1234", capsys)
    assert found["wa_id"] == "16505551234"
    assert found["tags"] == [
        {
            "name": OPT_OUT,
            "added_at": "2024-05-01T10:00:00+00:00",
            "source": "template",
            "message_id": "wamid.1",
        }
    ]
    assert found["consent_history"][0]["occurred_at"] == "2024-05-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("wa_id", "message"),
    [
        ("16505551234", "no customer with number 165******34"),
        ("+1 650 555 1234", "no customer with number 165******34"),
        ("US.13491208655302741918", "no customer with BSUID US." + "*" * 18 + "18"),
        ("US.ENT.11815799212886844830", "no customer with parent BSUID US.ENT." + "*" * 18 + "30"),
        ("c_abcdefghijklmnopqrst", "no customer with key c_abcdefghijklmnopqrst"),
        ("12", "invalid ID"),
        ("us.13491208655302741918", "invalid ID"),  # Meta never sends a lower-case country
        ("US." + "1" * 129, "invalid ID"),  # longer than a BSUID can be
        ("@ana.example", "invalid ID"),  # a username is display data, never a key
    ],
)
def test_show_fails_for_an_unknown_or_invalid_number(db_url, capsys, wa_id, message):
    assert main(["customers", "show", wa_id]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


# --- export-opt-outs ---


def seed_opt_outs() -> None:
    with transaction() as conn:
        record_opt_out(conn, "16505551234", "text", "wamid.1", AT)
        record_opt_out(conn, "447700900123", "meta_preferences", None, AT.replace(hour=11))


HEADER = (
    "wa_id,user_id,parent_user_id,customer_key,opted_out_at,source,message_id,identifiers,former_identifiers,"
    "language,request_words,requested_at,request_message_id,question_response,question_version,"
    "question_text,question_buttons,answer"
)
NO_EVIDENCE = [""] * 9  # recorded by a store call, without evidence


def exported() -> list[list[str]]:
    with transaction() as conn:
        keys = [conn.execute(select(customers.c.key).order_by(customers.c.id)).scalars().all()][0]
    return [
        HEADER.split(","),
        [
            "16505551234",
            "",
            "",
            keys[0],
            "2024-05-01T10:00:00+00:00",
            "text",
            "wamid.1",
            "phone:16505551234",
            "",
            *NO_EVIDENCE,
        ],
        [
            "447700900123",
            "",
            "",
            keys[1],
            "2024-05-01T11:00:00+00:00",
            "meta_preferences",
            "",
            "phone:447700900123",
            "",
            *NO_EVIDENCE,
        ],
    ]


def test_export_writes_csv_to_stdout(db_url, capsys):
    seed_opt_outs()
    assert main(["customers", "export-opt-outs"]) == 0
    captured = capsys.readouterr()
    assert list(csv.reader(io.StringIO(captured.out))) == exported()
    assert "exported 2 opt-outs" in captured.err


def test_export_writes_a_complete_file_and_nothing_else(db_url, tmp_path, capsys):
    seed_opt_outs()
    out = tmp_path / "opt-outs.csv"
    out.write_text("stale")
    assert main(["customers", "export-opt-outs", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    with out.open(newline="") as f:
        assert list(csv.reader(f)) == exported()
    assert list(tmp_path.glob(".opt-outs.csv*")) == []


def test_a_failed_export_leaves_the_previous_file_alone(db_url, tmp_path, monkeypatch):
    seed_opt_outs()
    out = tmp_path / "opt-outs.csv"
    out.write_text("previous export")

    def broken_after_one(conn):
        yield from itertools.islice(iter_opt_outs(conn), 1)
        raise ConnectionError("database went away")

    monkeypatch.setattr("bot.cli.customers.iter_opt_outs", broken_after_one)
    with pytest.raises(ConnectionError):
        main(["customers", "export-opt-outs", "--out", str(out)])
    assert out.read_text() == "previous export"
    assert list(tmp_path.glob(".opt-outs.csv*")) == []


def test_export_of_an_empty_store_is_just_the_header(db_url, capsys):
    assert main(["customers", "export-opt-outs"]) == 0
    assert capsys.readouterr().out.splitlines() == [HEADER]


# --- help ---


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["customers", "--help"], "export-opt-outs"),
        (["customers", "import", "--help"], "nothing is imported"),
        (["customers", "import", "--help"], "user_id business-scoped user ID"),
        (["customers", "show", "--help"], "consent history as JSON"),
        (["customers", "show", "--help"], "parent BSUID"),
        (["customers", "export-opt-outs", "--help"], HEADER),
    ],
)
def test_every_command_explains_itself(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert expected in " ".join(capsys.readouterr().out.split())
