"""Issue 13 section 4 end to end: OPT_OUT_MODE=immediate (real Rasa + action servers).

An unambiguous keyword in any language, or a tap on the template's stop button, writes the tag at
once and gets exactly one message saying so, in the customer's language; a paraphrase is still
confirmed first. (The default mode, confirm, is what tests/test_end_to_end*.py run.)
"""

from __future__ import annotations

import pytest

from bot.language import SUPPORTED
from bot.stop_keywords import written_keywords
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import customer, new_customer, opt_out_tag
from tests.language_flows import CONFIRMATION, MESSAGES, body_text, text_of, titles_of
from tests.rasa_servers import RunningBot, module_bot

pytestmark = pytest.mark.rasa


bot = module_bot("e2e-immediate", OPT_OUT_MODE="immediate")


def show(bot: RunningBot, wa_id: str) -> dict:
    found = customer(bot, wa_id)
    assert found is not None
    return found


@pytest.mark.parametrize("language", SUPPORTED)
def test_a_keyword_opts_out_at_once_with_one_message_in_that_language(bot, language):
    wa_id = new_customer()
    assert bot.post(meta.text(wa_id, MESSAGES[language][0])) == 200
    [answer] = bot.sent_to(wa_id)
    assert answer["type"] == "text"
    assert body_text(answer) == text_of("utter_opted_out", language)
    tag = opt_out_tag(show(bot, wa_id))
    assert tag is not None and tag["source"] == "text"


KEYWORDS = written_keywords()


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_every_keyword_is_understood_as_a_stop_request_and_tags_at_once(bot, keyword):
    wa_id = new_customer()
    assert bot.post(meta.text(wa_id, keyword)) == 200
    assert len(bot.sent_to(wa_id)) == 1
    assert opt_out_tag(show(bot, wa_id)) is not None


def test_the_templates_stop_button_opts_out_at_once(bot):
    wa_id = new_customer()
    assert bot.post(meta.quick_reply(wa_id, "STOP_PROMOTIONS", "Stop promotions")) == 200
    [answer] = bot.sent_to(wa_id)
    assert body_text(answer) == text_of("utter_opted_out", "en")
    profile = show(bot, wa_id)
    assert opt_out_tag(profile)["source"] == "template"
    # The evidence: the button's label as the customer saw it, and no question (none was asked).
    [event] = profile["consent_history"]
    assert event["evidence"]["request"]["words"] == "Stop promotions"
    assert event["evidence"]["question"] is None and event["evidence"]["answer"] is None


def test_a_paraphrase_is_still_confirmed_first(bot):
    wa_id = new_customer()
    assert bot.post(meta.text(wa_id, MESSAGES["es"][1])) == 200
    [question] = bot.sent_to(wa_id)
    assert body_text(question) == text_of(CONFIRMATION, "es")
    assert opt_out_tag(show(bot, wa_id)) is None
    assert bot.post(meta.button_reply(wa_id, "/affirm", titles_of(CONFIRMATION, "es")[0])) == 200
    assert opt_out_tag(show(bot, wa_id)) is not None


def test_an_already_opted_out_customer_is_told_so(bot):
    wa_id = new_customer()
    bot.post(meta.text(wa_id, "STOP"))
    assert bot.post(meta.text(wa_id, "STOP")) == 200
    assert body_text(bot.sent_to(wa_id)[-1]) == text_of("utter_already_opted_out", "en")
    assert [e["kind"] for e in show(bot, wa_id)["consent_history"]] == ["opt_out"]
