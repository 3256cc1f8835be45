"""When in doubt, ask: an opt-out the model only half believes still starts the confirmation.

A missed opt-out request is a legal problem (the customer keeps receiving marketing), while a
suspected one only starts the confirmation ("Do you want to stop receiving marketing messages?")
and writes nothing. DIET is over-confident on phrasings it has never seen: when it is wrong about
an opt-out it often gives `opt_out` almost nothing, or the FallbackClassifier turned a low or
ambiguous `opt_out` into `nlu_fallback`. So the pipeline asks for a second opinion:

- `OptOutSecondOpinion` runs right after a second, differently built intent classifier (Rasa's
  `LogisticRegressionClassifier` on the same sparse features, placed *before* DIET) and keeps that
  classifier's `opt_out` probability in the message; DIET then makes the real prediction.
- `OptOutInDoubt` runs after the FallbackClassifier and makes `opt_out` the predicted intent when
  DIET's own `opt_out` confidence is at least `threshold` or the second opinion's is at least
  `second_opinion_threshold`, unless DIET's top intent is one of `never_over` (a plain "yes" or
  "no", which the confirmation form reads as an answer).

Since session 4 config.yml runs OptOutInDoubt on DIET alone: the second opinion did not pay for its
training time on the DEV sets (see config.yml); `OptOutSecondOpinion` stays here to be put back.

The promoted intent keeps opt_out's own (lower) confidence. An answer to the confirmation question
is a yes only with confidence >= actions.opt_out.YES_CONFIDENCE (0.8); a runner-up's confidence is
at most 0.5, so a promoted opt_out is never read as a yes: in the form it is unclear (asked
again), or a no when the "no" intents hold most of the ranking (`confirmation_answer`).

`bench/nlu_eval.py` measures the intent that comes out of the whole pipeline, so its recall and
false-positive rate include this decision.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message

from nlu_components.intent_step import IntentStep
from nlu_components.opt_out_promotion import OPT_OUT, promoted

# Where OptOutSecondOpinion keeps the second classifier's opt_out probability (not in the output).
SECOND_OPINION = "opt_out_second_opinion"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class OptOutSecondOpinion(IntentStep):
    """Keep the preceding classifier's opt_out probability for OptOutInDoubt (see the module docstring).

    Place it right after the second classifier and before DIET, which overwrites the intent."""

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            ranking = message.data.get(INTENT_RANKING_KEY) or []
            message.data[SECOND_OPINION] = float(
                next(
                    (
                        e.get(PREDICTED_CONFIDENCE_KEY) or 0.0
                        for e in ranking
                        if e.get(INTENT_NAME_KEY) == OPT_OUT
                    ),
                    0.0,
                )
            )
        return messages


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class OptOutInDoubt(IntentStep):
    """Predict opt_out when DIET or the second opinion gives it enough (see the module docstring)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"threshold": 0.2, "second_opinion_threshold": 0.4, "never_over": ["affirm", "deny"]}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.threshold = float(self.config["threshold"])
        self.second_opinion_threshold = float(self.config.get("second_opinion_threshold", 1.1))
        self.never_over = frozenset(self.config.get("never_over") or ())

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            change = promoted(
                message.data.get(INTENT),
                message.data.get(INTENT_RANKING_KEY) or [],
                self.threshold,
                self.never_over,
                message.data.pop(SECOND_OPINION, None),
                self.second_opinion_threshold,
            )
            if change is not None:
                message.data[INTENT], message.data[INTENT_RANKING_KEY] = change
        return messages
