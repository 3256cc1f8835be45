"""The answer to a message the bot cannot read (an image, a voice note, a sticker...), in the
customer's language.

The channel sends it itself, without a Rasa turn, but its texts live with every other text: the
response `utter_unsupported_message` in domain.yml, one variation per language conditioned on the
slot `language`. The customer's language is that slot in their conversation; for a customer
without one yet, it is the slot's initial value, the business's default language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import yaml_files
from bot.contract import Response, Slot


@dataclass(frozen=True)
class UnsupportedReplies:
    by_language: Mapping[str, str]  # language -> text ("" for the unconditioned variation)
    default_language: str | None

    @classmethod
    def from_domain(cls, domain: Mapping[str, Any]) -> UnsupportedReplies:
        by_language: dict[str, str] = {}
        for variation in (domain.get("responses") or {}).get(Response.UNSUPPORTED_MESSAGE) or ():
            language = _language_condition(variation.get("condition") or [])
            by_language.setdefault(language, str(variation["text"]))
        if "" not in by_language:
            raise ValueError(
                f"domain.yml: {Response.UNSUPPORTED_MESSAGE} needs a variation without a condition"
            )
        slot = (domain.get("slots") or {}).get(Slot.LANGUAGE) or {}
        return cls(by_language, slot.get("initial_value"))

    @classmethod
    def from_file(cls, path: Path) -> UnsupportedReplies:
        return cls.from_domain(yaml_files.load(path) or {})

    def text_for(self, language: str | None) -> str:
        """Pure: the variation for the language, else the default language's, else the unconditioned
        one (as Rasa picks a response variation)."""
        for candidate in (language, self.default_language):
            if candidate in self.by_language:
                return self.by_language[candidate]
        return self.by_language[""]


def _language_condition(conditions: list[dict[str, Any]]) -> str:
    """The language a variation is for ("" for none): its condition on the slot `language`."""
    for condition in conditions:
        if condition.get("type") == "slot" and condition.get("name") == Slot.LANGUAGE:
            return str(condition.get("value"))
    return ""


async def known_language(agent: Any, sender_id: str) -> str | None:
    """The slot `language` of the customer's conversation in Rasa's tracker store, if there is one."""
    tracker_store = getattr(agent, "tracker_store", None)
    if tracker_store is None:
        return None
    tracker = await tracker_store.retrieve(sender_id)
    return None if tracker is None else tracker.get_slot(Slot.LANGUAGE)
