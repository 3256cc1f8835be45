"""The slot `language`: the language the bot answers the customer in (issue 13).

A custom slot mapping (`action_validate_slot_mappings`, run by Rasa after every customer message)
rather than an NLU entity: the decision is about the slot ("change it only when sure, else keep
the known language"), not about the message's meaning; an entity on every message would count as
an NLU prediction in every test story; and the NLU pipeline and its model stay independent of it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import ValidationAction
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.customer import run_store
from bot.contract import Metadata, Slot
from bot.language.detect import detect
from bot.masking import mask_identifier
from bot.store.customers import remember_language

logger = logging.getLogger(__name__)


def detected_language(message: dict[str, Any], allowed: list[str]) -> str | None:
    """Pure (given the detector): the language a message (`tracker.latest_message`) is surely
    written in, if the domain lists it; None to keep the known language.

    Button payloads ("/affirm") and events from outside (a broadcast's trigger_intent, whose text
    is "EXTERNAL: EXTERNAL_send_broadcast") carry no language; a language the domain does not list
    (a designer removed it) is not taken either."""
    text = message.get("text")
    if not text or text.startswith("/") or (message.get("metadata") or {}).get("is_external"):
        return None
    language = detect(text)
    return language if language in allowed else None


def language_update(message: dict[str, Any], known: str | None, allowed: list[str]) -> dict[str, Any]:
    """Pure (given the detector): the slot change a message makes, {} to keep the known language."""
    language = detected_language(message, allowed)
    if language is None or language == known:
        return {}
    return {Slot.LANGUAGE: language}


def broadcast_update(message: dict[str, Any]) -> dict[str, Any]:
    """Pure: a reply to a broadcast sets the slot `broadcast_id` to it; other messages keep it."""
    broadcast_id = (message.get("metadata") or {}).get(Metadata.BROADCAST_ID)
    return {Slot.BROADCAST_ID: broadcast_id} if broadcast_id else {}


class ValidateSlotMappings(ValidationAction):
    """`action_validate_slot_mappings`: fills the custom-mapped slots `language` and
    `broadcast_id` (the campaign the customer's latest reply to a broadcast was about)."""

    async def extract_language(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        allowed = [str(v) for v in domain["slots"][Slot.LANGUAGE].get("values") or []]
        language = detected_language(tracker.latest_message, allowed)
        if language is not None and _recorded.get(tracker.sender_id) != language:
            await _remember(tracker.sender_id, language)
        return language_update(tracker.latest_message, tracker.get_slot(Slot.LANGUAGE), allowed)

    async def extract_broadcast_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # The channel names the broadcast a reply quotes (bot/whatsapp/channel.py); this action
        # already runs after every customer message, so the slot costs no call of its own.
        return broadcast_update(tracker.latest_message)

    def validate_broadcast_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return {Slot.BROADCAST_ID: value}

    def validate_language(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # extract_language already decided; without this method the SDK warns on every change.
        return {Slot.LANGUAGE: value}


class _Recorded:
    """The language this process last put on each customer's profile, for the most recent
    `size` customers. Most turns detect the language the profile already holds, and asking the
    database to write it again cost a transaction on a worker thread every turn (~2 ms of the
    action server's CPU per message: docs/benchmarks.md, "Session 10"). Another process changing
    the profile (an erasure empties it) is seen again once the customer is pushed out of the cache
    or the action server restarts: the profile's language is a convenience, not consent."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._languages: OrderedDict[str, str] = OrderedDict()

    def get(self, customer_key: str) -> str | None:
        return self._languages.get(customer_key)

    def put(self, customer_key: str, language: str) -> None:
        self._languages[customer_key] = language
        self._languages.move_to_end(customer_key)
        if len(self._languages) > self._size:
            self._languages.popitem(last=False)


_recorded = _Recorded(size=100_000)


async def _remember(customer_key: str, language: str) -> None:
    """Put the decided language on the customer's profile (the slot's default, English, is never
    decided: only a detection is). The profile is for people and the link page; a failure here
    must not fail the customer's turn, so it is logged, the turn goes on and the next turn tries
    again."""
    try:
        recorded = await run_store(remember_language, customer_key, language)
    except (SQLAlchemyError, ValueError):
        logger.exception("could not record the language of %s", mask_identifier(customer_key))
        return
    if recorded is not None:  # not for a sender the store does not know yet
        _recorded.put(customer_key, language)
