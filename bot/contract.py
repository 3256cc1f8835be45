"""The names and signals that cross the Rasa boundary, written down once.

The WhatsApp channel (bot/whatsapp/), Rasa's stores (bot/rasa_stores.py), the custom actions
(actions/) and the commands (bot/cli/, bot/broadcast/) run in different processes and talk through
Rasa: message metadata, slots, intents, custom messages. A name that is spelled in two places can
drift apart silently (a renamed class used to turn every button opt-out into a "text" one), so each
name lives here, and tests/test_contract.py checks the Rasa names against domain.yml and the data.

- CHANNEL_NAME     the input and output channel's name (Rasa's `input_channel`, credentials.yml)
- Metadata         the keys of `tracker.latest_message["metadata"]` the channel writes
- MessageKind      what the customer did (typed, tapped our button, tapped a template's quick reply)
- Intent, Slot, Decision, Outcome, Entity, Form, ActionName, Response   the domain's names Python uses
- retry_turn       action → channel: "this turn must be retried" (a custom message)
- watch_turn       tracker store → channel: "the tracker store failed during this turn"
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

CHANNEL_NAME = "whatsapp"


class Metadata:
    """Keys of the metadata the channel hands to Rasa with every message (bot.whatsapp.channel
    .message_metadata); actions read them from `tracker.latest_message["metadata"]`."""

    WORDS = "words"  # the customer's own words, or the title of what they tapped (evidence)
    WA_ID = "wa_id"  # the phone number, when WhatsApp sent one
    USER_ID = "user_id"  # the business-scoped user id (BSUID), when WhatsApp sent one
    IDENTIFIER_KIND = "identifier_kind"  # the identifier the message came under: its kind ...
    IDENTIFIER_VALUE = "identifier_value"  # ... and value (bot.store.identifiers.Identifier)
    NAME = "name"  # the WhatsApp profile name
    USERNAME = "username"
    MESSAGE_ID = "message_id"  # the inbound wamid
    CONTEXT_ID = "context_id"  # the wamid the message replies to
    BROADCAST_ID = "broadcast_id"  # the broadcast whose template the message replies to
    PHONE_NUMBER_ID = "phone_number_id"  # the business number that received it
    TIMESTAMP = "timestamp"
    MESSAGE_KIND = "message_kind"  # a MessageKind value


class MessageKind(str, enum.Enum):
    """What the customer did to send a message Rasa sees: the channel writes it into the metadata,
    the opt-out actions turn it into the consent source."""

    TEXT = "text"  # typed
    BUTTON = "button"  # one of our reply buttons
    LIST = "list"  # a row of one of our lists
    QUICK_REPLY = "quick_reply"  # a quick-reply button of a marketing template


# How an opt-out request was made -> the `source` recorded with the OPT_OUT tag (bot.consent).
CONSENT_SOURCE = {
    MessageKind.TEXT: "text",
    MessageKind.BUTTON: "button",
    MessageKind.LIST: "button",
    MessageKind.QUICK_REPLY: "template",
}

# Conversations saved before the metadata carried `message_kind` name the channel's message
# classes under `message_type`; an opt-out request started then may be confirmed now.
LEGACY_MESSAGE_TYPE_KEY = "message_type"
LEGACY_MESSAGE_TYPES = {
    "TextMessage": MessageKind.TEXT,
    "ButtonReply": MessageKind.BUTTON,
    "ListReply": MessageKind.LIST,
    "QuickReply": MessageKind.QUICK_REPLY,
}


def message_kind(metadata: dict[str, Any] | None) -> MessageKind | None:
    """The kind of message the channel recorded in this metadata, if it recorded one."""
    metadata = metadata or {}
    try:
        return MessageKind(metadata[Metadata.MESSAGE_KIND])
    except (KeyError, ValueError):
        return LEGACY_MESSAGE_TYPES.get(metadata.get(LEGACY_MESSAGE_TYPE_KEY))


class Intent:
    OPT_OUT = "opt_out"
    AFFIRM = "affirm"
    DENY = "deny"
    WANT_MARKETING = "want_marketing"
    ASK_OFFERS = "ask_offers"
    COMPLAINT = "complaint"
    HELP = "help"
    ORDER_HELP = "order_help"
    BOT_CHALLENGE = "bot_challenge"


class Slot:
    OPT_OUT_DECISION = "opt_out_decision"
    OPT_OUT_OUTCOME = "opt_out_outcome"
    OPT_OUT_UNCLEAR_ANSWERS = "opt_out_unclear_answers"
    OPT_OUT_AT_ONCE = "opt_out_at_once"
    ALREADY_OPTED_OUT = "already_opted_out"
    MARKETING_SUPPRESSED = "marketing_suppressed"
    LANGUAGE = "language"
    BUSINESS_NAME = "business_name"
    LAST_BROADCAST = "last_broadcast"
    BROADCAST_ID = "broadcast_id"  # filled from Metadata.BROADCAST_ID and Entity.BROADCAST_ID


class Decision:
    """Values of Slot.OPT_OUT_DECISION: the customer's answer to "Are you sure?"."""

    CONFIRMED = "confirmed"
    KEPT = "kept"
    UNCLEAR = "unclear"


class Outcome:
    """Values of Slot.OPT_OUT_OUTCOME: what action_opt_out did; the rules branch on it."""

    OPTED_OUT = "opted_out"
    KEPT = "kept"
    UNDECIDED = "undecided"
    FAILED = "failed"


class Entity:
    BROADCAST_ID = "broadcast_id"
    CART_ITEMS = "cart_items"


class Form:
    OPT_OUT = "opt_out_form"


class Response:
    CONFIRMATION_QUESTION = "utter_ask_opt_out_form_opt_out_decision"
    ABANDONED_CART = "utter_abandoned_cart"
    UNSUPPORTED_MESSAGE = "utter_unsupported_message"


class ActionName:
    CHECK_OPT_OUT = "action_check_opt_out"
    OPT_OUT = "action_opt_out"
    VALIDATE_OPT_OUT_FORM = "validate_opt_out_form"
    SEND_BROADCAST = "action_send_broadcast"
    ABANDONED_CART_REMINDER = "action_abandoned_cart_reminder"
    LISTEN = "action_listen"  # Rasa's own


# --- action → channel: retry this turn ---------------------------------------------------------
# Rasa catches exceptions raised by custom actions and carries on with the turn, so an action that
# fails to save an opt-out cannot make the webhook fail by raising. It dispatches this custom
# message instead; the WhatsApp output channel raises on it, which aborts the turn before Rasa
# saves the tracker, and the webhook answers non-200 so that WhatsApp delivers the message again.
RETRY_TURN_KEY = "retry_turn"


def retry_turn(reason: str) -> dict[str, Any]:
    """The custom message (`json_message`) that asks the channel to retry the turn."""
    return {RETRY_TURN_KEY: reason}


def retry_reason(custom: dict[str, Any]) -> str | None:
    """The reason, when this custom message asks for a retry."""
    return str(custom[RETRY_TURN_KEY]) if RETRY_TURN_KEY in custom else None


# --- tracker store → channel: the tracker store failed during this turn ------------------------
# Rasa's FailSafeTrackerStore swallows tracker store errors and carries on (with an empty
# conversation when reading failed, in memory when saving failed); the channel must know, to ask
# WhatsApp for a retry instead.


@dataclass
class TurnWatch:
    """The tracker store errors seen during one turn."""

    errors: list[Exception] = field(default_factory=list)


_turn_watch: ContextVar[TurnWatch | None] = ContextVar("tracker_store_turn_watch", default=None)


@contextmanager
def watch_turn() -> Iterator[TurnWatch]:
    """Collect the tracker store errors of the turn run inside this block (same task, or tasks
    started from it)."""
    watch = TurnWatch()
    token = _turn_watch.set(watch)
    try:
        yield watch
    finally:
        _turn_watch.reset(token)


def note_tracker_store_error(error: Exception) -> None:
    """The tracker store's side: record a failure for the turn being watched, if any."""
    watch = _turn_watch.get()
    if watch is not None:
        watch.errors.append(error)


def tracker_store_failed() -> bool:
    """True inside `watch_turn()` once the tracker store has failed during this turn."""
    watch = _turn_watch.get()
    return watch is not None and bool(watch.errors)
