"""Issue 13 end to end: every language gets the opt-out flow in its own language.

Real Rasa + action servers (OPT_OUT_MODE unset: confirm) and the local Graph API stand-in; each
flow is its own customer. The share of flows answered entirely in the customer's language is
written to results/language_e2e.json (and must be 1).
"""

from __future__ import annotations

import itertools
import json

import pytest

from bot import PROJECT_ROOT
from bot.language import SUPPORTED
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import new_customer
from tests.language_flows import (
    CONFIRMATION,
    MESSAGES,
    body_text,
    button_titles,
    replies_in,
    text_of,
    titles_of,
)
from tests.rasa_servers import RunningBot, module_bot

pytestmark = pytest.mark.rasa

RESULTS = PROJECT_ROOT / "results" / "language_e2e.json"


bot = module_bot("e2e-languages")


def keyword_then_yes_button(bot: RunningBot, language: str) -> str:
    wa_id = new_customer()
    bot.post(meta.text(wa_id, MESSAGES[language][0]))
    bot.post(meta.button_reply(wa_id, "/affirm", titles_of(CONFIRMATION, language)[0]))
    return wa_id


def paraphrase_then_typed_yes(bot: RunningBot, language: str) -> str:
    wa_id = new_customer()
    _, paraphrase, yes = MESSAGES[language]
    bot.post(meta.text(wa_id, paraphrase))
    bot.post(meta.text(wa_id, yes))
    return wa_id


def paraphrase_then_no_button(bot: RunningBot, language: str) -> str:
    wa_id = new_customer()
    bot.post(meta.text(wa_id, MESSAGES[language][1]))
    bot.post(meta.button_reply(wa_id, "/deny", titles_of(CONFIRMATION, language)[1]))
    return wa_id


def language_then_ok_then_an_image(bot: RunningBot, language: str) -> str:
    """The language is learnt from the opt-out request; "ok" and an image carry none, so the
    answers after them (utter_ok, the channel's unsupported-message reply) keep it."""
    wa_id = new_customer()
    bot.post(meta.text(wa_id, MESSAGES[language][1]))
    bot.post(meta.button_reply(wa_id, "/deny", titles_of(CONFIRMATION, language)[1]))
    bot.post(meta.text(wa_id, "ok"))
    bot.post(meta.message(wa_id, "image", {"mime_type": "image/jpeg", "sha256": "abc", "id": "1234"}))
    return wa_id


FLOWS = {
    "keyword, Yes button": keyword_then_yes_button,
    "paraphrase, typed yes": paraphrase_then_typed_yes,
    "paraphrase, No button": paraphrase_then_no_button,
    "paraphrase, No, ok, image": language_then_ok_then_an_image,
}


@pytest.mark.parametrize("language", SUPPORTED)
def test_a_stop_keyword_gets_the_confirmation_and_its_buttons_in_that_language(bot, language):
    wa_id = new_customer()
    assert bot.post(meta.text(wa_id, MESSAGES[language][0])) == 200
    [question] = bot.sent_to(wa_id)
    assert body_text(question) == text_of(CONFIRMATION, language)
    assert button_titles(question) == titles_of(CONFIRMATION, language)
    assert [b["reply"]["id"] for b in question["interactive"]["action"]["buttons"]] == ["/affirm", "/deny"]

    assert bot.post(meta.button_reply(wa_id, "/affirm", titles_of(CONFIRMATION, language)[0])) == 200
    assert body_text(bot.sent_to(wa_id)[-1]) == text_of("utter_opted_out", language)


def test_every_flow_in_every_language_is_answered_in_the_customers_language(bot):
    outcomes = []
    for language, (flow, run) in itertools.product(SUPPORTED, FLOWS.items()):
        wa_id = run(bot, language)
        in_language, replies = replies_in(bot, wa_id, language)
        outcomes.append({"language": language, "flow": flow, "replies": replies, "in_language": in_language})
    answered = [o for o in outcomes if o["replies"] and o["in_language"] == o["replies"]]
    share = len(answered) / len(outcomes)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps({"share_in_language": share, "flows": outcomes}, indent=2, ensure_ascii=False)
    )
    assert share == 1, [o for o in outcomes if o not in answered]
