"""The answer to an image or a voice note, in the customer's language (bot/whatsapp/unsupported.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from bot import PROJECT_ROOT
from bot.whatsapp.unsupported import UnsupportedReplies, known_language

DOMAIN = {
    "slots": {"language": {"initial_value": "de"}},
    "responses": {
        "utter_unsupported_message": [
            {"text": "Text only, please."},
            {"condition": [{"type": "slot", "name": "language", "value": "es"}], "text": "Solo texto."},
            {"condition": [{"type": "slot", "name": "language", "value": "de"}], "text": "Nur Text."},
        ]
    },
}


def test_the_customers_language_else_the_default_else_the_unconditioned_variation():
    replies = UnsupportedReplies.from_domain(DOMAIN)
    assert replies.text_for("es") == "Solo texto."
    assert replies.text_for(None) == "Nur Text."  # the business's default (the slot's initial value)
    assert replies.text_for("fr") == "Nur Text."  # no French variation: the default
    no_default = UnsupportedReplies.from_domain({**DOMAIN, "slots": {}})
    assert no_default.text_for("fr") == "Text only, please."


def test_a_response_without_an_unconditioned_variation_is_refused_at_start():
    domain = {
        "responses": {"utter_unsupported_message": DOMAIN["responses"]["utter_unsupported_message"][1:]}
    }
    with pytest.raises(ValueError, match="without a condition"):
        UnsupportedReplies.from_domain(domain)


def test_the_projects_domain_answers_in_spanish_and_in_english_by_default():
    replies = UnsupportedReplies.from_file(PROJECT_ROOT / "domain.yml")
    assert "solo puedo leer" in replies.text_for("es")
    assert "text messages and button" in replies.text_for(None)


@dataclass
class Tracker:
    slots: dict[str, Any]

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)


@dataclass
class TrackerStore:
    trackers: dict[str, Tracker]

    async def retrieve(self, sender_id: str) -> Tracker | None:
        return self.trackers.get(sender_id)


@dataclass
class Agent:
    tracker_store: TrackerStore


def test_the_known_language_is_the_conversations_slot():
    agent = Agent(TrackerStore({"34600000001": Tracker({"language": "es"})}))
    assert asyncio.run(known_language(agent, "34600000001")) == "es"
    assert asyncio.run(known_language(agent, "34600000002")) is None  # no conversation yet
    assert asyncio.run(known_language(None, "34600000001")) is None  # no agent (not loaded yet)
