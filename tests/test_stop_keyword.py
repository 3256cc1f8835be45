"""Stop keywords are opt-outs whatever the model learnt (nlu_components/stop_keyword.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actions.opt_out import confirmation_answer, decision_of, no_weight
from bot.stop_keywords import is_stop_keyword, written_keywords
from nlu_components.opt_out_promotion import keyword_opt_out

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = written_keywords()


def ranking(*pairs: tuple[str, float]) -> list[dict]:
    return [{"name": name, "confidence": confidence} for name, confidence in pairs]


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_every_keyword_of_the_designers_file_is_one_written_any_way(keyword):
    assert is_stop_keyword(keyword)
    assert is_stop_keyword(f"  {keyword.lower()}! ")


def test_a_keyword_the_model_misread_becomes_a_sure_opt_out_keeping_the_rest_of_the_ranking():
    # What a model trained on the session-8 data did with "CANCELAR": an order question.
    misread = ranking(("order_help", 0.71), ("opt_out", 0.2), ("deny", 0.05))
    intent, new_ranking = keyword_opt_out(misread)
    assert intent == {"name": "opt_out", "confidence": 1.0}
    assert new_ranking == ranking(("opt_out", 1.0), ("order_help", 0.71), ("deny", 0.05))


def test_a_keyword_answer_to_the_question_is_still_judged_as_an_answer():
    # "STOP" is a plain yes word; with "no" weighing in the model's ranking it is not a sure yes.
    intent, sure = keyword_opt_out(ranking(("opt_out", 0.9), ("deny", 0.02)))
    assert decision_of(confirmation_answer(intent["name"], 0, 1.0, no_weight(sure), "STOP")) == "yes"
    intent, doubtful = keyword_opt_out(ranking(("deny", 0.6), ("opt_out", 0.3)))
    assert decision_of(confirmation_answer(intent["name"], 0, 1.0, no_weight(doubtful), "STOP")) != "yes"
    # "CANCEL" may mean "cancel this": not a plain yes word, so it is asked again, never a yes.
    intent, _ = keyword_opt_out([])
    assert decision_of(confirmation_answer(intent["name"], 0, 1.0, 0.0, "CANCEL")) == "unclear"


def test_the_component_runs_last_in_the_pipeline():
    pipeline = yaml.safe_load((ROOT / "config.yml").read_text())["pipeline"]
    assert pipeline[-1]["name"] == "nlu_components.stop_keyword.StopKeyword"


# Slow: the component registers itself with Rasa's recipe, whose import loads TensorFlow (~10 s).
@pytest.mark.slow
def test_the_component_rewrites_keywords_and_nothing_else():
    from rasa.shared.nlu.training_data.message import Message

    from nlu_components.stop_keyword import StopKeyword

    component = StopKeyword()
    misread = ranking(("order_help", 0.71), ("opt_out", 0.2))
    keyword = Message(data={"text": "Cancelar!", "intent": misread[0], "intent_ranking": misread})
    sentence = Message(data={"text": "cancelar mi pedido", "intent": misread[0], "intent_ranking": misread})
    component.process([keyword, sentence])
    assert keyword.get("intent") == {"name": "opt_out", "confidence": 1.0}
    assert keyword.get("intent_ranking")[0]["name"] == "opt_out"
    assert sentence.get("intent") == misread[0]
