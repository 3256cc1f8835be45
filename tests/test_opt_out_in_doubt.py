"""When in doubt, ask (nlu_components/opt_out_in_doubt.py): opt_out with enough of the ranking
starts the confirmation, and a promoted opt_out can never be read as a "yes" to it."""

import pytest

from actions.opt_out import YES_CONFIDENCE, confirmation_answer, decision_of, no_weight
from nlu_components.opt_out_promotion import promoted

NEVER_OVER = frozenset({"affirm", "deny"})


def ranking(*pairs):
    return [{"name": name, "confidence": confidence} for name, confidence in pairs]


def test_a_runner_up_opt_out_above_the_threshold_is_promoted_with_its_own_confidence():
    rank = ranking(("want_marketing", 0.6), ("opt_out", 0.3), ("complaint", 0.1))
    intent, new_rank = promoted(rank[0], rank, 0.2, NEVER_OVER)
    assert intent == {"name": "opt_out", "confidence": 0.3}
    assert [e["name"] for e in new_rank] == ["opt_out", "want_marketing", "complaint"]


def test_below_the_threshold_nothing_changes():
    rank = ranking(("want_marketing", 0.85), ("opt_out", 0.1))
    assert promoted(rank[0], rank, 0.2, NEVER_OVER) is None


def test_an_opt_out_turned_into_nlu_fallback_is_an_opt_out_again():
    rank = ranking(("nlu_fallback", 0.5), ("opt_out", 0.45), ("complaint", 0.4))
    intent, _ = promoted(rank[0], rank, 0.2, NEVER_OVER)
    assert intent == {"name": "opt_out", "confidence": 0.45}


@pytest.mark.parametrize("top", sorted(NEVER_OVER))
def test_a_plain_yes_or_no_is_never_overruled(top):
    rank = ranking((top, 0.55), ("opt_out", 0.4))
    assert promoted(rank[0], rank, 0.2, NEVER_OVER) is None
    # ...also when the FallbackClassifier put nlu_fallback above it
    rank = ranking(("nlu_fallback", 0.5), (top, 0.45), ("opt_out", 0.4))
    assert promoted(rank[0], rank, 0.2, NEVER_OVER) is None


def test_opt_out_on_top_or_absent_is_left_alone():
    rank = ranking(("opt_out", 0.9), ("deny", 0.1))
    assert promoted(rank[0], rank, 0.2, NEVER_OVER) is None
    rank = ranking(("greet", 0.9), ("deny", 0.1))
    assert promoted(rank[0], rank, 0.2, NEVER_OVER) is None


@pytest.mark.parametrize("top_confidence", [0.5, 0.6, 0.8, 0.99])
def test_a_promoted_opt_out_is_never_a_yes_to_the_confirmation(top_confidence):
    # The runner-up of a ranking that sums to 1 has at most 0.5: far below YES_CONFIDENCE.
    rest = 1.0 - top_confidence
    rank = ranking(("out_of_scope", top_confidence), ("opt_out", rest))
    change = promoted(rank[0], rank, 0.0, NEVER_OVER)
    assert change is not None
    intent, new_rank = change
    assert intent["confidence"] < YES_CONFIDENCE
    answer = confirmation_answer(intent["name"], 0, intent["confidence"], no_weight(new_rank), "stop")
    assert decision_of(answer) != "yes"


# Slow: the component registers itself with Rasa's recipe, whose import loads TensorFlow (~10 s).
@pytest.mark.slow
def test_the_component_rewrites_the_message_it_processes():
    from rasa.shared.nlu.training_data.message import Message

    from nlu_components.opt_out_in_doubt import OptOutInDoubt

    component = OptOutInDoubt({"threshold": 0.25, "never_over": ["affirm", "deny"]})
    rank = ranking(("nlu_fallback", 0.5), ("complaint", 0.48), ("opt_out", 0.42))
    message = Message(data={"text": "x", "intent": rank[0], "intent_ranking": rank})
    (out,) = component.process([message])
    assert out.get("intent") == {"name": "opt_out", "confidence": 0.42}
    assert out.get("intent_ranking")[0]["name"] == "opt_out"
