"""Typed values for everything a WhatsApp Cloud API webhook can say, parsed once at the door.

Nothing past `parse_webhook` indexes into the raw JSON. Unknown fields are ignored (Meta adds them
without notice); unknown message types, statuses and preference values become explicit UNKNOWN /
`OtherMessage` values instead of errors. Missing or ill-typed *required* fields raise
`MalformedWebhook`, which the channel answers with 400.

Shapes: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

WHATSAPP_OBJECT = "whatsapp_business_account"


class MalformedWebhook(ValueError):
    """The body is not a WhatsApp Cloud API webhook we can read."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """Fields shared by every customer message."""

    id: str  # wamid: the dedupe key
    wa_id: str
    name: str | None
    timestamp: int
    phone_number_id: str | None
    context_id: str | None  # the message this one replies to


@dataclass(frozen=True, slots=True)
class TextMessage(InboundMessage):
    body: str


@dataclass(frozen=True, slots=True)
class ButtonReply(InboundMessage):
    """A tap on a reply button of an interactive message the bot sent."""

    button_id: str
    title: str


@dataclass(frozen=True, slots=True)
class ListReply(InboundMessage):
    """A row picked from a list message the bot sent."""

    row_id: str
    title: str


@dataclass(frozen=True, slots=True)
class QuickReply(InboundMessage):
    """A tap on a template's quick-reply button (`type: "button"`), e.g. "Stop promotions"."""

    payload: str
    text: str


@dataclass(frozen=True, slots=True)
class Reaction(InboundMessage):
    reacted_to: str | None
    emoji: str | None  # None: the reaction was removed


@dataclass(frozen=True, slots=True)
class OtherMessage(InboundMessage):
    """Media, location, contacts, orders, system notices, unsupported and unknown types."""

    kind: str

    @property
    def expects_answer(self) -> bool:
        """System notices (number changed, ...) are not written by the customer: no answer."""
        return self.kind != "system"


class DeliveryStatus(enum.IntEnum):
    """Rank order: a status never moves backwards. Failed is terminal."""

    UNKNOWN = 0
    SENT = 1
    DELIVERED = 2
    READ = 3
    FAILED = 4

    @classmethod
    def parse(cls, value: str) -> DeliveryStatus:
        return cls.__members__.get(value.upper(), cls.UNKNOWN)


@dataclass(frozen=True, slots=True)
class ApiError:
    code: int
    title: str


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    message_id: str
    status: DeliveryStatus
    raw_status: str
    recipient_id: str | None
    timestamp: int
    errors: tuple[ApiError, ...]
    callback_data: str | None  # biz_opaque_callback_data set when sending
    phone_number_id: str | None  # the business number that sent the message

    @property
    def error_code(self) -> int | None:
        return self.errors[0].code if self.errors else None


class PreferenceValue(enum.Enum):
    STOP = "stop"
    RESUME = "resume"
    SIGNUP = "signup"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: str) -> PreferenceValue:
        try:
            return cls(value.lower())
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class MarketingPreference:
    """A `user_preferences` event: the customer used WhatsApp's own "stop / resume promotions"."""

    wa_id: str
    value: PreferenceValue
    category: str
    detail: str | None
    timestamp: int
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    preferences: tuple[MarketingPreference, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.messages or self.statuses or self.preferences)

    def phone_number_ids(self) -> set[str | None]:
        return {e.phone_number_id for e in (*self.messages, *self.statuses, *self.preferences)}


def split_by_number(batch: WebhookBatch, ours: str) -> tuple[WebhookBatch, WebhookBatch]:
    """(what was sent to our business number, what was sent to any other).

    One app can be subscribed to several numbers of a WhatsApp Business Account, and one webhook
    can batch changes of several numbers. Only changes whose `metadata.phone_number_id` is exactly
    ours may be processed: another number's customers are not ours to tag, answer or deduplicate.
    Without a configured number of our own, nothing is ours.
    """

    def mine(event: InboundMessage | StatusUpdate | MarketingPreference) -> bool:
        return bool(ours) and event.phone_number_id == ours

    def keep(wanted: bool) -> WebhookBatch:
        return WebhookBatch(
            tuple(m for m in batch.messages if mine(m) is wanted),
            tuple(s for s in batch.statuses if mine(s) is wanted),
            tuple(p for p in batch.preferences if mine(p) is wanted),
        )

    return keep(True), keep(False)


def parse_webhook(body: Any) -> WebhookBatch:
    """Read a decoded webhook body into typed values, or raise MalformedWebhook."""
    if not isinstance(body, dict) or body.get("object") != WHATSAPP_OBJECT:
        raise MalformedWebhook("not a whatsapp_business_account notification")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    preferences: list[MarketingPreference] = []
    for entry in _list(body, "entry", required=True):
        for change in _list(_dict(entry, "entry"), "changes"):
            change = _dict(change, "change")
            value = change.get("value")
            if not isinstance(value, dict):
                raise MalformedWebhook("change without a value object")
            phone_number_id = _opt_str(_opt_dict(value, "metadata"), "phone_number_id")
            names = _contact_names(value)
            for raw in _list(value, "messages"):
                messages.append(_message(_dict(raw, "message"), names, phone_number_id))
            for raw in _list(value, "statuses"):
                statuses.append(_status(_dict(raw, "status"), phone_number_id))
            for raw in _list(value, "user_preferences"):
                preferences.append(_preference(_dict(raw, "user_preference"), phone_number_id))
    return WebhookBatch(tuple(messages), tuple(statuses), tuple(preferences))


def _message(raw: dict, names: dict[str, str], phone_number_id: str | None) -> InboundMessage:
    wa_id = _str(raw, "from")
    common = {
        "id": _str(raw, "id"),
        "wa_id": wa_id,
        "name": names.get(wa_id),
        "timestamp": _timestamp(raw),
        "phone_number_id": phone_number_id,
        "context_id": _opt_str(_opt_dict(raw, "context"), "id"),
    }
    kind = _str(raw, "type")
    if kind == "text":
        return TextMessage(**common, body=_str(_dict(raw.get("text"), "text"), "body"))
    if kind == "interactive" and isinstance(raw.get("interactive"), dict):
        interactive = raw["interactive"]
        if isinstance(interactive.get("button_reply"), dict):
            reply = interactive["button_reply"]
            return ButtonReply(**common, button_id=_str(reply, "id"), title=_text(reply, "title"))
        if isinstance(interactive.get("list_reply"), dict):
            reply = interactive["list_reply"]
            return ListReply(**common, row_id=_str(reply, "id"), title=_text(reply, "title"))
    if kind == "button" and isinstance(raw.get("button"), dict):
        button = raw["button"]
        text = _text(button, "text")
        return QuickReply(**common, payload=_text(button, "payload") or text, text=text)
    if kind == "reaction" and isinstance(raw.get("reaction"), dict):
        reaction = raw["reaction"]
        return Reaction(
            **common,
            reacted_to=_opt_str(reaction, "message_id"),
            emoji=_opt_str(reaction, "emoji") or None,
        )
    # An interactive or button message without its body lands here too: acknowledged, not guessed.
    return OtherMessage(**common, kind=kind)


def _status(raw: dict, phone_number_id: str | None) -> StatusUpdate:
    errors = tuple(
        ApiError(code=_int(err, "code"), title=_text(err, "title"))
        for err in (_dict(e, "error") for e in _list(raw, "errors"))
    )
    raw_status = _str(raw, "status")
    return StatusUpdate(
        message_id=_str(raw, "id"),
        status=DeliveryStatus.parse(raw_status),
        raw_status=raw_status,
        recipient_id=_opt_str(raw, "recipient_id"),
        timestamp=_timestamp(raw),
        errors=errors,
        callback_data=_opt_str(raw, "biz_opaque_callback_data"),
        phone_number_id=phone_number_id,
    )


def _preference(raw: dict, phone_number_id: str | None) -> MarketingPreference:
    return MarketingPreference(
        wa_id=_str(raw, "wa_id"),
        value=PreferenceValue.parse(_str(raw, "value")),
        category=_text(raw, "category"),
        detail=_opt_str(raw, "detail"),
        timestamp=_timestamp(raw),
        phone_number_id=phone_number_id,
    )


def _contact_names(value: dict) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in _list(value, "contacts"):
        if isinstance(contact, dict) and isinstance(contact.get("wa_id"), str):
            name = _opt_str(_opt_dict(contact, "profile"), "name")
            if name:
                names[contact["wa_id"]] = name
    return names


# --- field readers: each one either returns the declared type or raises MalformedWebhook ---


def _dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{what} is not an object")
    return value


def _opt_dict(parent: dict, key: str) -> dict:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _list(parent: dict, key: str, required: bool = False) -> list:
    value = parent.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise MalformedWebhook(f"{key} is not a list")
    return value


def _str(parent: dict, key: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedWebhook(f"{key} is missing or not a string")
    return value


def _text(parent: dict, key: str) -> str:
    """Free text that may legitimately be empty."""
    value = parent.get(key, "")
    if not isinstance(value, str):
        raise MalformedWebhook(f"{key} is not a string")
    return value


def _opt_str(parent: dict, key: str) -> str | None:
    value = parent.get(key)
    return value if isinstance(value, str) else None


def _int(parent: dict, key: str) -> int:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedWebhook(f"{key} is not an integer")
    return value


def _timestamp(parent: dict) -> int:
    """Messages and statuses send a string of Unix seconds; user_preferences send a number."""
    value = parent.get("timestamp")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        return int(value)
    raise MalformedWebhook("timestamp is missing or not Unix seconds")
