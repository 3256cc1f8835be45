"""Issue 13, sections 2 and 3, end to end: real Rasa + action servers, the fake Graph API, and the
command line in subprocesses, as an operator runs it.

A Spanish customer asks to stop and taps "Sí": `customers evidence` shows their exact words, the
question they were shown (text, buttons, version) and their answer, and `customers show` their
language. After `customers forget`, `customers show` finds nothing, the conversation is gone from
Rasa's tracker store, an import of an old list skips the number, and a broadcast to an audience
file holding it (after the person wrote again, which makes them a customer once more) skips them
while reaching another customer of the same file.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from bot.store.evidence import version_of
from bot.whatsapp import meta_payloads as meta
from tests.language_flows import CONFIRMATION, MESSAGES, body_text, button_titles, text_of, titles_of
from tests.rasa_servers import RunningBot, module_bot

pytestmark = pytest.mark.rasa

LOLA, MARTA = "34600100001", "34600100002"


bot = module_bot("e2e-evidence", SUPPRESSION_SECRET="e2e-suppression-secret")


def cli_json(bot: RunningBot, *args: str) -> dict:
    result = bot.cli(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def tracker_rows(bot: RunningBot, key: str) -> int:
    with sqlite3.connect(bot.workdir / "tracker.sqlite3") as db:
        return db.execute("SELECT count(*) FROM events WHERE sender_id = ?", (key,)).fetchone()[0]


def test_a_spanish_stop_is_proven_then_forgotten_and_never_messaged_again(bot, tmp_path):
    words = MESSAGES["es"][1]  # "quiero dejar de recibir promociones"
    assert bot.post(meta.text(LOLA, words)) == 200
    [question] = bot.sent_to(LOLA)
    assert body_text(question) == text_of(CONFIRMATION, "es")
    yes = titles_of(CONFIRMATION, "es")[0]
    question_id = next(m["id"] for m in bot.graph.state.sent if m["body"] is question)
    assert bot.post(meta.button_reply(LOLA, "/affirm", yes, context_id=question_id)) == 200
    assert body_text(bot.sent_to(LOLA)[-1]) == text_of("utter_opted_out", "es")

    # The proof: exact words, the question as shown, the answer; the language on the profile.
    record = cli_json(bot, "customers", "evidence", LOLA)
    [event] = record["consent_events"]
    evidence = event["evidence"]
    assert event["kind"] == "opt_out" and evidence["language"] == "es"
    assert evidence["request"]["words"] == words and evidence["request"]["message_id"].startswith("wamid.")
    assert evidence["question"]["response"] == CONFIRMATION
    assert evidence["question"]["text"] == body_text(question)
    assert evidence["question"]["buttons"] == button_titles(question)
    assert evidence["question"]["message_id"] == question_id
    assert evidence["question"]["version"] == version_of(
        body_text(question), button_titles(question), ["/affirm", "/deny"]
    )
    assert evidence["answer"]["words"] == yes and evidence["answer"]["message_id"] == event["message_id"]
    assert record["customer"]["language"] == "es" and not record["marketing_allowed"]
    assert cli_json(bot, "customers", "show", LOLA)["language"] == "es"
    page = tmp_path / "lola.html"
    assert bot.cli("customers", "evidence", LOLA, "--html", str(page)).returncode == 0
    assert words in page.read_text() and yes in page.read_text()
    key = record["customer"]["key"]
    assert tracker_rows(bot, key) > 0

    # Forgotten: nothing personal left to find, the conversation gone.
    forgotten = bot.cli("customers", "forget", LOLA, "--operator", "Grace (DPO)")
    assert forgotten.returncode == 0, forgotten.stderr
    assert LOLA not in forgotten.stdout
    shown = bot.cli("customers", "show", LOLA)
    assert shown.returncode == 1 and "no customer" in shown.stderr and LOLA not in shown.stderr
    assert tracker_rows(bot, key) == 0
    assert bot.cli("customers", "evidence", LOLA).returncode == 1

    # An old list brings the number back: skipped, not imported. Marta is imported.
    old_list = tmp_path / "old-list.csv"
    old_list.write_text(f"wa_id,name\n{LOLA},Lola\n{MARTA},Marta\n")
    imported = bot.cli("customers", "import", str(old_list))
    assert imported.returncode == 0, imported.stderr
    assert "skipped 1 row(s) (line 2)" in imported.stderr
    assert bot.cli("customers", "show", LOLA).returncode == 1

    # Lola writes again (a customer once more), then a broadcast to a file with both numbers.
    assert bot.post(meta.text(LOLA, "hola, ¿tenéis la talla 38?")) == 200
    assert not cli_json(bot, "customers", "show", LOLA)["marketing_allowed"]
    audience = tmp_path / "audience.csv"
    audience.write_text(f"phone\n+{LOLA}\n+{MARTA}\n")
    args = (
        "broadcast",
        "--template",
        "promo_offer",
        "--language",
        "es_ES",
        "--param",
        "20%",
        "--audience",
        str(audience),
    )
    sent = bot.cli(*args)
    assert sent.returncode == 0, sent.stderr
    templates = [m["body"] for m in bot.graph.state.sent if m["body"]["type"] == "template"]
    assert [body["to"] for body in templates] == [MARTA]
