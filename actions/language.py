"""The slot `language`: the language the bot answers the customer in (issue 13).

A custom slot mapping (`action_validate_slot_mappings`, run by Rasa after every customer message)
rather than an NLU entity: the decision is about the slot ("change it only when sure, else keep
the known language"), not about the message's meaning; an entity on every message would count as
an NLU prediction in every test story; and the NLU pipeline and its model stay independent of it.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import ValidationAction
from rasa_sdk.types import DomainDict

from bot.language.detect import detect

SLOT = "language"


def language_update(message: dict[str, Any], known: str | None, allowed: list[str]) -> dict[str, Any]:
    """Pure (given the detector): the slot change a message (`tracker.latest_message`) makes, {} to
    keep the known language.

    Button payloads ("/affirm") and events from outside (a broadcast's trigger_intent, whose text
    is "EXTERNAL: EXTERNAL_send_broadcast") carry no language; a language the domain does not list
    (a designer removed it) is not taken either."""
    text = message.get("text")
    if not text or text.startswith("/") or (message.get("metadata") or {}).get("is_external"):
        return {}
    language = detect(text)
    if language is None or language == known or language not in allowed:
        return {}
    return {SLOT: language}


class ValidateSlotMappings(ValidationAction):
    """`action_validate_slot_mappings`: fills the custom-mapped slot `language`."""

    async def extract_language(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        allowed = [str(v) for v in domain["slots"][SLOT].get("values") or []]
        return language_update(tracker.latest_message, tracker.get_slot(SLOT), allowed)

    def validate_language(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # extract_language already decided; without this method the SDK warns on every change.
        return {SLOT: value}
