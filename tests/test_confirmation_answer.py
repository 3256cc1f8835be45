"""The answer to "Do you want to stop receiving marketing messages?": yes / no / unclear (issue 9).

`confirmation_answer` is pure; these tests pin every branch: only a sure affirmation or opt-out
request is "yes", wanting to keep (or more) marketing is "no", everything else is asked again.
"""

import pytest

from actions.opt_out import (
    MAX_UNCLEAR_ANSWERS,
    NO_DOUBT,
    NO_INTENTS,
    NO_MAJORITY,
    QUESTION_INTENTS,
    YES_CONFIDENCE,
    YES_INTENTS,
    confirmation_answer,
    decision_of,
    no_weight,
    plainly_yes,
    typed_text,
    yes_words,
)

ALL_INTENTS = [
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "help",
    "bot_challenge",
    "opt_out",
    "order_help",
    "ask_offers",
    "out_of_scope",
    "want_marketing",
    "complaint",
    "EXTERNAL_send_broadcast",
    "EXTERNAL_abandoned_cart",
    "nlu_fallback",
]


def test_the_threshold_for_yes_is_documented_and_strict():
    assert 0.5 < YES_CONFIDENCE < 1.0
    assert {"affirm", "opt_out"} == YES_INTENTS
    assert {"deny", "want_marketing"} == NO_INTENTS
    assert MAX_UNCLEAR_ANSWERS == 2


@pytest.mark.parametrize("intent", ["affirm", "opt_out"])
@pytest.mark.parametrize("confidence", [1.0, 0.95, YES_CONFIDENCE])
def test_a_sure_yes_or_stop_confirms(intent, confidence):
    # 1.0 is the "Yes" button (/affirm) or a typed keyword the model is sure of.
    assert confirmation_answer(intent, 0, confidence) == {"opt_out_decision": "confirmed"}
    assert confirmation_answer(intent, 1, confidence) == {"opt_out_decision": "confirmed"}


@pytest.mark.parametrize("intent", ["affirm", "opt_out"])
@pytest.mark.parametrize("confidence", [YES_CONFIDENCE - 0.001, 0.6, 0.31, 0.0])
def test_an_unsure_yes_is_unclear_and_asked_again(intent, confidence):
    assert confirmation_answer(intent, 0, confidence) == {"opt_out_unclear_answers": 1}
    # ... and as the second unclear answer it ends the form WITHOUT opting out.
    assert confirmation_answer(intent, 1, confidence) == {
        "opt_out_unclear_answers": 2,
        "opt_out_decision": "unclear",
    }


@pytest.mark.parametrize("intent", ["deny", "want_marketing"])
@pytest.mark.parametrize("confidence", [1.0, 0.8, 0.51, 0.2])
@pytest.mark.parametrize("unclear_so_far", [0, 1])
def test_no_or_wanting_more_marketing_keeps_at_any_confidence(intent, confidence, unclear_so_far):
    # "no", "keep them", "I want more offers": nothing is written, so a "no" never needs to be sure.
    assert confirmation_answer(intent, unclear_so_far, confidence) == {"opt_out_decision": "kept"}


@pytest.mark.parametrize(
    "intent",
    [
        "help",
        "bot_challenge",
        "order_help",
        "ask_offers",
        "complaint",
        "EXTERNAL_send_broadcast",
        "EXTERNAL_abandoned_cart",
    ],
)
@pytest.mark.parametrize("confidence", [1.0, 0.4])
def test_questions_complaints_and_outside_events_are_not_answers(intent, confidence):
    assert intent in QUESTION_INTENTS or intent.startswith("EXTERNAL_")
    assert confirmation_answer(intent, 0, confidence) == {}
    assert confirmation_answer(intent, 1, confidence) == {}


@pytest.mark.parametrize(
    "intent", ["nlu_fallback", "out_of_scope", "greet", "goodbye", "thanks", "", None, "unknown_intent"]
)
@pytest.mark.parametrize("confidence", [1.0, 0.9, 0.1])
def test_anything_else_is_unclear_however_confident(intent, confidence):
    assert confirmation_answer(intent, 0, confidence) == {"opt_out_unclear_answers": 1}
    assert confirmation_answer(intent, 1.0, confidence) == {
        "opt_out_unclear_answers": 2,
        "opt_out_decision": "unclear",
    }


def test_the_unclear_count_never_goes_past_the_limit_into_a_yes():
    # Even a stale count above the limit ends undecided, never confirmed.
    assert confirmation_answer("out_of_scope", 5, 1.0) == {
        "opt_out_unclear_answers": 6,
        "opt_out_decision": "unclear",
    }


def test_confidence_defaults_to_a_button_press():
    assert confirmation_answer("affirm", 0) == {"opt_out_decision": "confirmed"}


@pytest.mark.parametrize("intent", ALL_INTENTS)
@pytest.mark.parametrize("confidence", [0.0, 0.5, YES_CONFIDENCE - 0.01, YES_CONFIDENCE, 1.0])
@pytest.mark.parametrize("unclear_so_far", [0, 1])
def test_exhaustively_only_a_sure_affirm_or_opt_out_is_ever_yes(intent, confidence, unclear_so_far):
    answer = confirmation_answer(intent, unclear_so_far, confidence)
    is_yes = decision_of(answer) == "yes"
    assert is_yes == (intent in {"affirm", "opt_out"} and confidence >= YES_CONFIDENCE)
    assert set(answer) <= {"opt_out_decision", "opt_out_unclear_answers"}
    assert answer.get("opt_out_decision") in {None, "confirmed", "kept", "unclear"}


@pytest.mark.parametrize(
    ("answer", "decision"),
    [
        ({"opt_out_decision": "confirmed"}, "yes"),
        ({"opt_out_decision": "kept"}, "no"),
        ({"opt_out_unclear_answers": 2, "opt_out_decision": "unclear"}, "unclear"),
        ({"opt_out_unclear_answers": 1}, "unclear"),
        ({}, "unclear"),  # a question: answered, then asked again
    ],
)
def test_decision_of(answer, decision):
    assert decision_of(answer) == decision


@pytest.mark.parametrize("intent", ["affirm", "opt_out"])
@pytest.mark.parametrize("doubt", [NO_DOUBT, 0.3, 1.0])
def test_a_confident_yes_with_a_real_no_behind_it_is_unclear(intent, doubt):
    # "I want more offers" read as opt_out at 0.88 with want_marketing the runner-up: ask again.
    assert confirmation_answer(intent, 0, 0.95, doubt) == {"opt_out_unclear_answers": 1}
    assert confirmation_answer(intent, 0, 0.95, NO_DOUBT - 0.01) == {"opt_out_decision": "confirmed"}


@pytest.mark.parametrize("intent", ["affirm", "opt_out"])
def test_a_typed_yes_must_be_plain(intent):
    assert confirmation_answer(intent, 0, 1.0, 0.0, typed="yes please stop") == {
        "opt_out_decision": "confirmed"
    }
    # The model's sure yes is not enough for words that can mean "no" or nothing at all.
    for typed in ("amo as mensagens de vcs", "huh?", "yes?", "🤔 ok", "keep them", "band mat karo"):
        assert confirmation_answer(intent, 0, 1.0, 0.0, typed=typed) == {"opt_out_unclear_answers": 1}
    assert confirmation_answer("deny", 0, 0.9, typed="no?") == {"opt_out_decision": "kept"}


@pytest.mark.parametrize(
    "text",
    ["yes", "Yes!", "Sí, por favor", "sim", "haan band karo", "D'accord", "allez-y", "ja bitte", "iya stop",
     "👍", "ok 👍🏽", "STOP", "✅"],
)  # fmt: skip
def test_plain_yes_answers(text):
    assert plainly_yes(text)


@pytest.mark.parametrize(
    "text",
    ["", "?", "yes?", "¿sí?", "no", "nope", "don't stop", "keep them", "I love your messages",
     "send me more", "band mat karo", "nein", "non merci", "jangan", "não", "ok 🤔", "hä", "what"],
)  # fmt: skip
def test_answers_that_are_not_plainly_yes(text):
    assert not plainly_yes(text)


def test_a_stretched_yes_is_plain_and_a_stretched_no_is_not():
    assert plainly_yes("siii") and plainly_yes("yesss") and plainly_yes("ouiii stop")
    assert not plainly_yes("nooo") and not plainly_yes("naaahi") and not plainly_yes("neeein")
    assert not plainly_yes("kkkkk")  # laughter, not "k"


def test_no_negation_or_keep_word_is_on_the_yes_list():
    # The list is edited by hand; these words would turn a "no" into a permanent opt-out.
    forbidden = {"no", "not", "dont", "nao", "nicht", "nein", "pas", "non", "nahi", "mat", "jangan",
                 "tidak", "keep", "more", "mas", "mais", "plus", "mehr", "lagi", "want", "like", "love"}  # fmt: skip
    assert not forbidden & yes_words()


def test_a_button_payload_is_not_typed_text():
    assert typed_text("/affirm") is None
    assert typed_text("yes") == "yes"


def test_the_weight_of_no_sums_the_no_intents_of_the_ranking():
    ranking = [
        {"name": "opt_out", "confidence": 0.8},
        {"name": "want_marketing", "confidence": 0.07},
        {"name": "deny", "confidence": 0.05},
        {"name": "greet", "confidence": 0.08},
    ]
    assert no_weight(ranking) == pytest.approx(0.12)
    assert no_weight([]) == 0.0  # a button payload has no ranking: no doubt
    assert no_weight([{"name": "deny", "confidence": None}]) == 0.0


# ------------------------------------------------- the form's validate action uses the parse


def _tracker(
    intent: str,
    confidence,
    unclear: float = 0,
    requested: str = "opt_out_decision",
    ranking=(),
    text: str = "/affirm",  # a tap on the bot's own button unless a test types something
):
    from rasa_sdk import Tracker

    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": list(ranking),
    }
    slots = {"requested_slot": requested, "opt_out_unclear_answers": unclear}
    loop = {"name": "opt_out_form"}
    return Tracker("15550001111", slots, latest, [], False, None, loop, "action_listen")


async def _validate(tracker) -> dict:
    from rasa_sdk.executor import CollectingDispatcher

    from actions.opt_out import ValidateOptOutForm

    events = await ValidateOptOutForm().run(CollectingDispatcher(), tracker, {})
    return {e["name"]: e["value"] for e in events}


async def test_the_form_confirms_a_button_press():
    assert await _validate(_tracker("affirm", 1.0)) == {"opt_out_decision": "confirmed"}


async def test_the_form_asks_again_after_an_unsure_yes():
    assert await _validate(_tracker("affirm", 0.62)) == {"opt_out_unclear_answers": 1}


async def test_the_form_keeps_the_customer_who_wants_more_offers():
    assert await _validate(_tracker("want_marketing", 0.7, unclear=1)) == {"opt_out_decision": "kept"}


async def test_the_form_asks_again_when_no_is_the_close_runner_up():
    ranking = [{"name": "opt_out", "confidence": 0.86}, {"name": "want_marketing", "confidence": 0.12}]
    assert await _validate(_tracker("opt_out", 0.86, ranking=ranking)) == {"opt_out_unclear_answers": 1}


async def test_the_form_asks_again_when_the_answer_is_a_question():
    assert await _validate(_tracker("affirm", 1.0, text="huh?")) == {"opt_out_unclear_answers": 1}


async def test_the_form_confirms_a_plain_typed_yes_but_not_an_odd_one():
    assert await _validate(_tracker("affirm", 0.97, text="yes")) == {"opt_out_decision": "confirmed"}
    odd = _tracker("opt_out", 1.0, text="amo as mensagens de vcs")
    assert await _validate(odd) == {"opt_out_unclear_answers": 1}


async def test_a_parse_without_confidence_is_not_a_yes():
    assert await _validate(_tracker("opt_out", None)) == {"opt_out_unclear_answers": 1}


async def test_the_stop_that_starts_the_form_is_not_an_answer():
    assert await _validate(_tracker("opt_out", 1.0, requested=None)) == {}


@pytest.mark.parametrize("intent", ["opt_out", "nlu_fallback", "out_of_scope"])
def test_a_weak_answer_that_is_mostly_no_is_no(intent):
    # nlu_components/opt_out_in_doubt.py may put opt_out on top of "I want more offers" (DIET:
    # want_marketing 0.6, opt_out 0.3) so that, outside the form, it is confirmed; as an answer
    # to the confirmation it is still a no.
    assert confirmation_answer(intent, 0, 0.3, NO_MAJORITY) == {"opt_out_decision": "kept"}
    assert confirmation_answer(intent, 0, 0.3, 0.9) == {"opt_out_decision": "kept"}
    assert decision_of(confirmation_answer(intent, 0, 0.3, NO_MAJORITY - 0.01)) == "unclear"
    assert decision_of(confirmation_answer(intent, 0, NO_MAJORITY, 0.9)) == "unclear"
