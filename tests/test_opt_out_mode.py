"""OPT_OUT_MODE (actions/opt_out_mode.py): which stop requests skip the confirmation question."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

import actions.opt_out
from actions.opt_out import ActionCheckOptOut
from actions.opt_out_mode import CONFIRM, IMMEDIATE, mode_from, opts_out_at_once
from bot.stop_keywords import is_stop_keyword


def test_the_mode_defaults_to_confirm_and_refuses_anything_else():
    assert mode_from({}) == CONFIRM
    assert mode_from({"OPT_OUT_MODE": ""}) == CONFIRM
    assert mode_from({"OPT_OUT_MODE": " Immediate "}) == IMMEDIATE
    with pytest.raises(ValueError, match="OPT_OUT_MODE"):
        mode_from({"OPT_OUT_MODE": "immediately"})


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop!", " Stop. ", "BAJA", "dar de baja", "PARAR", "arrêt", "Stopp", "berhenti", "band karo"],
)
def test_a_bare_keyword_in_any_language_is_a_stop_keyword(text):
    assert is_stop_keyword(text)


@pytest.mark.parametrize(
    "text", ["please stop", "stop sending me offers", "no pares", "don't stop", "stop?!maybe", "band", ""]
)
def test_anything_more_or_less_than_a_keyword_is_not(text):
    assert not is_stop_keyword(text)


def test_only_immediate_mode_skips_the_question_and_only_for_keywords_and_taps():
    assert opts_out_at_once(IMMEDIATE, "STOP")
    assert opts_out_at_once(IMMEDIATE, None)  # a tap on a stop button
    assert not opts_out_at_once(IMMEDIATE, "please stop the promos")  # a paraphrase is still asked
    assert not opts_out_at_once(CONFIRM, "STOP")
    assert not opts_out_at_once(CONFIRM, None)


def stop_request(text: str) -> Tracker:
    metadata = {"message_id": "wamid.1", "message_kind": "text"}
    latest = {"intent": {"name": "opt_out", "confidence": 0.99}, "text": text, "metadata": metadata}
    events = [{"event": "user", "parse_data": latest, "metadata": metadata}]
    return Tracker("4915100000009", {}, latest, events, False, None, {}, None)


@pytest.mark.parametrize(
    ("mode", "text", "at_once"),
    [
        (IMMEDIATE, "BAJA", True),
        (IMMEDIATE, "/opt_out", True),  # a stop button
        (IMMEDIATE, "quiero darme de baja", False),  # a paraphrase: asked
        (CONFIRM, "BAJA", False),
    ],
)
async def test_the_check_action_takes_a_keyword_as_the_answer_only_in_immediate_mode(
    sqlite_url, monkeypatch, mode, text, at_once
):
    monkeypatch.setattr(actions.opt_out, "MODE", mode)
    events = await ActionCheckOptOut().run(CollectingDispatcher(), stop_request(text), {})
    assert SlotSet("opt_out_at_once", at_once) in events
    assert SlotSet("opt_out_decision", "confirmed" if at_once else None) in events
