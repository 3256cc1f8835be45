"""A message that is exactly a stop keyword is an opt-out request, whatever the trained model says.

The keywords of actions/stop_keywords.yml ("STOP", "BAJA", "CANCELAR", ...) are the words carriers
and regulators treat as revoking consent. The rules start the opt-out only on the `opt_out`
intent, so before this component a retraining could silently lose a keyword: in session 8 a model
trained on new data read "CANCELAR" as something else, and only an end-to-end test noticed. Placed
last in the pipeline, this component makes the keyword's intent `opt_out` with confidence 1.0;
the model's data and thresholds no longer decide it. In the confirmation form the answer is still
judged by actions/opt_out.py (a keyword is a "yes" only when it is a plain yes word there too).
"""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.stop_keywords import is_stop_keyword
from nlu_components.intent_step import IntentStep
from nlu_components.opt_out_promotion import keyword_opt_out


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class StopKeyword(IntentStep):
    """Predict opt_out (confidence 1.0) for a message that is exactly one of the stop keywords."""

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            # A button payload ("/affirm") is parsed by Rasa's intent parser, not this pipeline.
            if isinstance(text, str) and is_stop_keyword(text):
                message.data[INTENT], message.data[INTENT_RANKING_KEY] = keyword_opt_out(
                    message.data.get(INTENT_RANKING_KEY) or []
                )
        return messages
