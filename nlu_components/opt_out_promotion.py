"""The decisions of OptOutInDoubt (nlu_components/opt_out_in_doubt.py) and StopKeyword
(nlu_components/stop_keyword.py), pure: whether opt_out is put on top of a prediction. Apart from
the components so that they can be read and tested without loading Rasa's component registry (and
TensorFlow with it).
"""

from __future__ import annotations

from typing import Any

from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY

OPT_OUT = "opt_out"


def promoted(
    intent: dict[str, Any] | None,
    ranking: list[dict[str, Any]],
    threshold: float,
    never_over: frozenset[str] | set[str],
    second_opinion: float | None = None,
    second_opinion_threshold: float = 1.1,
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Pure: the (intent, ranking) with opt_out on top, or None when nothing changes.

    `intent`/`ranking` are what DIET and the FallbackClassifier produced; `second_opinion` the
    other classifier's opt_out probability (None: there was none). DIET's own top intent is the
    first entry of the ranking that is not `nlu_fallback`. The promoted intent keeps DIET's
    opt_out confidence (0 when DIET's ranking does not list opt_out).
    """
    if (intent or {}).get(INTENT_NAME_KEY) == OPT_OUT:
        return None
    opt_out = next((e for e in ranking if e.get(INTENT_NAME_KEY) == OPT_OUT), None)
    confidence = float((opt_out or {}).get(PREDICTED_CONFIDENCE_KEY) or 0.0)
    second = second_opinion is not None and second_opinion >= second_opinion_threshold
    if confidence < threshold and not second:
        return None
    model_top = next((e for e in ranking if e.get(INTENT_NAME_KEY) != DEFAULT_NLU_FALLBACK_INTENT_NAME), None)
    if model_top is not None and model_top.get(INTENT_NAME_KEY) in never_over:
        return None
    new_intent = {INTENT_NAME_KEY: OPT_OUT, PREDICTED_CONFIDENCE_KEY: confidence}
    top = opt_out if opt_out is not None else new_intent
    new_ranking = [top, *(e for e in ranking if e is not opt_out)]
    return new_intent, new_ranking


def keyword_opt_out(ranking: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pure: the (intent, ranking) of a message that is exactly a stop keyword: opt_out, sure.

    The rest of the model's ranking is kept as it was, so that an answer to the confirmation
    question still weighs what the model saw of a "no" in it (actions/opt_out.py, `no_weight`).
    """
    new_intent = {INTENT_NAME_KEY: OPT_OUT, PREDICTED_CONFIDENCE_KEY: 1.0}
    return new_intent, [new_intent, *(e for e in ranking if e.get(INTENT_NAME_KEY) != OPT_OUT)]
