"""Customers without phone numbers (issue 10) end to end: signed webhooks -> real Rasa + action
server -> fake Graph API, with the customer store looked at directly.

A "username customer" is one whose number WhatsApp withholds: no `from` / `wa_id` at all, only the
business-scoped user id (BSUID) in `from_user_id` / `user_id`.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from bot.db import engine_for, transaction
from bot.store.customers import profile
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import new_customer, tracker_events, user_turns
from tests.rasa_servers import RunningBot, module_bot

pytestmark = pytest.mark.rasa

FIXTURES = Path(__file__).parent / "fixtures" / "pywa"
_bsuids = itertools.count(7730551842193)


def new_bsuid() -> str:
    return f"DE.{next(_bsuids)}"


bot = module_bot("identity-e2e")


def shown(bot: RunningBot, who: str) -> dict[str, Any] | None:
    with transaction(engine_for(bot.database_url)) as conn:
        return profile(conn, who)


def tag_names(bot: RunningBot, who: str) -> list[str]:
    return [tag["name"] for tag in (shown(bot, who) or {}).get("tags", [])]


def test_a_username_customer_opts_out_and_is_answered_by_bsuid(bot):
    bsuid = new_bsuid()
    stop = meta.text(None, "STOP", user_id=bsuid, name="Ana", username="@ana.example")
    assert bot.post(stop) == 200
    [question] = bot.sent_to(bsuid)
    assert question["type"] == "interactive"
    assert question["recipient"] == bsuid and "to" not in question  # `to` would win over `recipient`
    assert bot.post(meta.button_reply(None, "/affirm", "Yes, stop them", user_id=bsuid)) == 200
    found = shown(bot, bsuid)
    assert [tag["name"] for tag in found["tags"]] == ["OPT_OUT"]
    assert found["wa_id"] is None and found["username"] == "@ana.example"
    assert [(i["kind"], i["value"]) for i in found["identities"]] == [("bsuid", bsuid)]
    [event] = found["consent_history"]
    assert (event["identifier_kind"], event["identifier_value"]) == ("bsuid", bsuid)
    answers = bot.sent_to(bsuid)
    assert "won't receive marketing messages" in answers[-1]["text"]["body"]
    assert all(body["recipient"] == bsuid and "to" not in body for body in answers)


def test_a_meta_stop_with_only_a_user_id_writes_the_tag(bot):
    bsuid = new_bsuid()
    assert bot.post(meta.marketing_preference(None, "stop", user_id=bsuid)) == 200
    found = shown(bot, bsuid)
    assert [(t["name"], t["source"]) for t in found["tags"]] == [("OPT_OUT", "meta_preferences")]


def test_a_status_linking_the_bsuid_to_a_number_makes_a_broadcast_to_the_number_skip_them(bot, tmp_path):
    number, bsuid, other = new_customer(), new_bsuid(), new_customer()
    csv = tmp_path / "customers.csv"
    csv.write_text(f"wa_id,name,tags\n{number},Ben,LINKED\n{other},Cleo,LINKED\n")
    assert bot.cli("customers", "import", str(csv)).returncode == 0
    # Ben stops marketing in WhatsApp while known to us only by his BSUID...
    assert bot.post(meta.marketing_preference(None, "stop", user_id=bsuid)) == 200
    # ...then a status of a message to his number carries both: they are one customer.
    assert bot.post(meta.status("wamid.link1", number, "delivered", recipient_user_id=bsuid)) == 200
    assert "OPT_OUT" in tag_names(bot, number)
    result = bot.cli(
        "broadcast", "--template", "promo_offer", "--language", "en_US", "--tag", "LINKED", "--id", "b-linked"
    )
    assert result.returncode == 0, result.stderr
    templates = [m["body"] for m in bot.graph.state.sent if m["body"]["type"] == "template"]
    assert [body.get("to") for body in templates] == [other]
    assert not any(body.get("recipient") == bsuid for body in templates)


def test_a_number_change_keeps_the_tag_and_the_conversation(bot):
    old, new, bsuid, new_id = new_customer(), new_customer(), new_bsuid(), new_bsuid()
    assert bot.post(meta.text(old, "STOP", user_id=bsuid)) == 200
    assert bot.post(meta.button_reply(old, "/affirm", "Yes, stop them", user_id=bsuid)) == 200
    key = shown(bot, old)["key"]
    assert bot.post(meta.number_changed(old, new, new_user_id=new_id, previous_user_id=bsuid)) == 200
    moved = shown(bot, new)
    assert moved["key"] == key and "OPT_OUT" in [t["name"] for t in moved["tags"]]
    assert shown(bot, new_id)["key"] == key
    assert bot.post(meta.text(new, "hello again", user_id=new_id)) == 200
    assert user_turns(tracker_events(bot, key))[-1] == "hello again"
    assert "STOP" in user_turns(tracker_events(bot, key))  # the same conversation
    assert bot.sent_to(new)  # answered at the new number


def test_a_seven_digit_number_is_a_customer(bot):
    assert bot.post(meta.text("6831234", "hello")) == 200  # Niue
    assert shown(bot, "+683 1234")["wa_id"] == "6831234"


def pywa_cases() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        for name, payload in json.loads(path.read_text()).items():
            cases.append((f"{path.stem}:{name}", payload))
    return cases


def addressed_to_us(payload: Any) -> Any:
    """The fixture with every change's metadata naming this bot's number, so it is processed."""
    payload = copy.deepcopy(payload)
    for entry in payload.get("entry", []) if isinstance(payload, dict) else []:
        for change in entry.get("changes", []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict) and isinstance(value.get("metadata"), dict):
                value["metadata"]["phone_number_id"] = meta.PHONE_NUMBER_ID
    return payload


def test_every_pywa_fixture_is_answered_200(bot):
    cases = pywa_cases()
    assert len(cases) == 74
    answers = {name: bot.post(addressed_to_us(payload)) for name, payload in cases}
    assert {name: status for name, status in answers.items() if status != 200} == {}
