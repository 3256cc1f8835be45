"""Typed values for everything a WhatsApp Cloud API webhook can say, parsed once at the door.

Nothing past `parse_webhook` indexes into the raw JSON. Unknown fields are ignored (Meta adds them
without notice); unknown message types, statuses and preference values become explicit UNKNOWN /
`OtherMessage` values instead of errors. Missing or ill-typed *required* fields raise
`MalformedWebhook`, which the channel answers with 400.

Who sent an event is a `Sender`: every identifier WhatsApp gave for them, typed and validated
(phone number from `from` / `wa_id` / `recipient_id`; BSUID from `from_user_id` / `user_id` /
`recipient_user_id`; parent BSUID from the `*parent_user_id` fields, including the older spelling
`parent_recipient_user_id`), plus the profile name and username (display data only). Since
WhatsApp usernames, any of them may be absent (notes/whatsapp-bsuid.md). An event whose sender has
no usable identifier (none at all, or only malformed ones such as pywa's placeholder
`"<WHATSAPP_USER_PHONE_NUMBER>"`) is no error: it becomes an `Unidentified` entry, which the
channel acknowledges, logs and counts. `system` messages announcing a changed number or BSUID,
and the legacy `user_id_update` field, become `Rotation`s.

Shapes: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from bot.masking import mask_identifier
from bot.store.identifiers import BSUID, PARENT_BSUID, PHONE, Identifier, from_webhook, parse_human

WHATSAPP_OBJECT = "whatsapp_business_account"


class MalformedWebhook(ValueError):
    """The body is not a WhatsApp Cloud API webhook we can read."""


@dataclass(frozen=True, slots=True)
class Sender:
    """Everything an event says about who the customer is. At least one identifier is set."""

    phone: Identifier | None = None
    bsuid: Identifier | None = None
    parent_bsuid: Identifier | None = None
    name: str | None = None  # WhatsApp profile name: display only
    username: str | None = None  # WhatsApp username: display only, never a key

    @property
    def identifiers(self) -> tuple[Identifier, ...]:
        return tuple(i for i in (self.phone, self.bsuid, self.parent_bsuid) if i is not None)

    @property
    def preferred(self) -> Identifier:
        """The identifier the event is best recorded under: BSUID, then phone, then parent."""
        return next(i for i in (self.bsuid, self.phone, self.parent_bsuid) if i is not None)

    @property
    def masked(self) -> str:
        return mask_identifier(self.preferred.value)

    @property
    def evidence(self) -> str:
        """Several identifiers in one Meta event are Meta's word that they belong together."""
        return "webhook_pair" if len(self.identifiers) > 1 else "first_contact"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """Fields shared by every customer message."""

    id: str  # wamid: the dedupe key
    sender: Sender
    timestamp: int
    phone_number_id: str | None
    context_id: str | None  # the message this one replies to

    @property
    def wa_id(self) -> str | None:
        """The sender's phone number, when WhatsApp shared it."""
        return self.sender.phone.value if self.sender.phone else None

    @property
    def name(self) -> str | None:
        return self.sender.name


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
    """Media, location, contacts, orders, unsupported and unknown types."""

    kind: str

    @property
    def expects_answer(self) -> bool:
        """Notices (a revoked message, a reply to the phone-number request) get no answer."""
        return self.kind not in ("system", "revoke", "contact_request")


@dataclass(frozen=True, slots=True)
class ContactRequestReply(OtherMessage):
    """The customer tapped the phone-number request button: WhatsApp shares their own number.
    Only `origin: contact_request` proves that; a contact card they forward proves nothing."""

    shared_phone: Identifier


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
    recipient_id: str | None  # as sent (a phone number, or a group id for group messages)
    recipient: Sender | None  # None: a group message, or no usable identifier
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

    sender: Sender
    value: PreferenceValue
    category: str
    detail: str | None
    timestamp: int
    phone_number_id: str | None

    @property
    def wa_id(self) -> str | None:
        return self.sender.phone.value if self.sender.phone else None


@dataclass(frozen=True, slots=True)
class Rotation:
    """WhatsApp replaced some of a user's identifiers: `old` ones by `new` ones (a number change
    regenerates the BSUID too). From a `system` message or the legacy `user_id_update` field."""

    old: tuple[Identifier, ...]
    new: tuple[Identifier, ...]
    kind: str  # user_changed_number | user_changed_user_id | user_id_update | ...
    message_id: str | None  # the system message's wamid (None for user_id_update)
    timestamp: int
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class Unidentified:
    """An event acknowledged without processing: its sender has no usable identifier."""

    event: str  # message | preference | rotation
    reason: str  # no_identifier | malformed_identifier
    phone_number_id: str | None

    @property
    def counter(self) -> str:
        return f"{self.event}_{self.reason}"


Event = InboundMessage | StatusUpdate | MarketingPreference | Rotation | Unidentified


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    preferences: tuple[MarketingPreference, ...] = ()
    rotations: tuple[Rotation, ...] = ()
    unidentified: tuple[Unidentified, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.messages or self.statuses or self.preferences or self.rotations or self.unidentified)

    def events(self) -> tuple[Event, ...]:
        return (*self.messages, *self.statuses, *self.preferences, *self.rotations, *self.unidentified)

    def phone_number_ids(self) -> set[str | None]:
        return {e.phone_number_id for e in self.events()}


def split_by_number(batch: WebhookBatch, ours: str) -> tuple[WebhookBatch, WebhookBatch]:
    """(what was sent to our business number, what was sent to any other).

    One app can be subscribed to several numbers of a WhatsApp Business Account, and one webhook
    can batch changes of several numbers. Only changes whose `metadata.phone_number_id` is exactly
    ours may be processed: another number's customers are not ours to tag, answer or deduplicate.
    Without a configured number of our own, nothing is ours.
    """

    def mine(event: Event) -> bool:
        return bool(ours) and event.phone_number_id == ours

    def keep(wanted: bool) -> WebhookBatch:
        return WebhookBatch(
            tuple(m for m in batch.messages if mine(m) is wanted),
            tuple(s for s in batch.statuses if mine(s) is wanted),
            tuple(p for p in batch.preferences if mine(p) is wanted),
            tuple(r for r in batch.rotations if mine(r) is wanted),
            tuple(u for u in batch.unidentified if mine(u) is wanted),
        )

    return keep(True), keep(False)


def parse_webhook(body: Any) -> WebhookBatch:
    """Read a decoded webhook body into typed values, or raise MalformedWebhook."""
    if not isinstance(body, dict) or body.get("object") != WHATSAPP_OBJECT:
        raise MalformedWebhook("not a whatsapp_business_account notification")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    preferences: list[MarketingPreference] = []
    rotations: list[Rotation] = []
    unidentified: list[Unidentified] = []
    for entry in _list(body, "entry", required=True):
        for change in _list(_dict(entry, "entry"), "changes"):
            change = _dict(change, "change")
            value = change.get("value")
            if not isinstance(value, dict):
                raise MalformedWebhook("change without a value object")
            number = _opt_str(_opt_dict(value, "metadata"), "phone_number_id")
            contacts = _Contacts.of(value)
            for raw in _list(value, "messages"):
                raw = _dict(raw, "message")
                if raw.get("type") == "system":
                    rotation = _system_rotation(raw, number)
                    if isinstance(rotation, Rotation):
                        rotations.append(rotation)
                    elif rotation is not None:
                        unidentified.append(rotation)
                    continue
                parsed = _message(raw, contacts, number)
                (messages if isinstance(parsed, InboundMessage) else unidentified).append(parsed)
            for raw in _list(value, "statuses"):
                statuses.append(_status(_dict(raw, "status"), contacts, number))
            for raw in _list(value, "user_preferences"):
                parsed_preference = _preference(_dict(raw, "user_preference"), contacts, number)
                if isinstance(parsed_preference, MarketingPreference):
                    preferences.append(parsed_preference)
                else:
                    unidentified.append(parsed_preference)
            for raw in _list(value, "user_id_update"):
                parsed_update = _user_id_update(_dict(raw, "user_id_update"), number)
                (rotations if isinstance(parsed_update, Rotation) else unidentified).append(parsed_update)
    return WebhookBatch(
        tuple(messages), tuple(statuses), tuple(preferences), tuple(rotations), tuple(unidentified)
    )


class _Contacts:
    """The `contacts` of one change, found by phone number or BSUID."""

    def __init__(self, contacts: list[dict]) -> None:
        self._all = contacts

    @classmethod
    def of(cls, value: dict) -> _Contacts:
        return cls([c for c in _list(value, "contacts") if isinstance(c, dict)])

    def find(self, *ids: str | None) -> dict:
        """The contact carrying one of `ids` as `wa_id` / `user_id`; the only contact if none does
        (a phone-less event may name its user in `contacts` only); else nothing."""
        for contact in self._all:
            if any(i and i in (contact.get("wa_id"), contact.get("user_id")) for i in ids):
                return contact
        return self._all[0] if len(self._all) == 1 else {}


def _sender(
    phone: object, bsuid: object, parent: object, contact: dict, event: str, number: str | None
) -> Sender | Unidentified:
    """The event's own fields first, then its contact's; profile data from the contact."""
    profile = _opt_dict(contact, "profile")
    found = {
        PHONE: from_webhook(PHONE, phone) or from_webhook(PHONE, contact.get("wa_id")),
        BSUID: from_webhook(BSUID, bsuid) or from_webhook(BSUID, contact.get("user_id")),
        PARENT_BSUID: from_webhook(PARENT_BSUID, parent)
        or from_webhook(PARENT_BSUID, contact.get("parent_user_id")),
    }
    if not any(found.values()):
        given = any(
            isinstance(v, str) and v
            for v in (phone, bsuid, parent, contact.get("wa_id"), contact.get("user_id"))
        )
        return Unidentified(event, "malformed_identifier" if given else "no_identifier", number)
    return Sender(
        phone=found[PHONE],
        bsuid=found[BSUID],
        parent_bsuid=found[PARENT_BSUID],
        name=_opt_str(profile, "name") or None,
        username=_opt_str(profile, "username") or None,
    )


def _message(raw: dict, contacts: _Contacts, number: str | None) -> InboundMessage | Unidentified:
    contact = contacts.find(_opt_str(raw, "from"), _opt_str(raw, "from_user_id"))
    sender = _sender(
        raw.get("from"), raw.get("from_user_id"), raw.get("from_parent_user_id"), contact, "message", number
    )
    if isinstance(sender, Unidentified):
        return sender
    common = {
        "id": _str(raw, "id"),
        "sender": sender,
        "timestamp": _timestamp(raw),
        "phone_number_id": number,
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
    if kind == "contacts":
        shared = _requested_phone(raw)
        if shared is not None:
            return ContactRequestReply(**common, kind="contact_request", shared_phone=shared)
    # An interactive or button message without its body lands here too: acknowledged, not guessed.
    return OtherMessage(**common, kind=kind)


def _requested_phone(raw: dict) -> Identifier | None:
    """The number shared through the phone-number request button (`origin: contact_request`)."""
    for card in raw.get("contacts") or ():
        if not isinstance(card, dict) or card.get("origin") != "contact_request":
            continue
        for phone in card.get("phones") or ():
            if isinstance(phone, dict):
                found = from_webhook(PHONE, phone.get("wa_id"))
                if found is not None:
                    return found
    return None


def _status(raw: dict, contacts: _Contacts, number: str | None) -> StatusUpdate:
    errors = tuple(
        ApiError(code=_int(err, "code"), title=_text(err, "title"))
        for err in (_dict(e, "error") for e in _list(raw, "errors"))
    )
    raw_status = _str(raw, "status")
    recipient_id = _opt_str(raw, "recipient_id")
    recipient: Sender | None = None
    if raw.get("recipient_type") != "group":
        user_id = _opt_str(raw, "recipient_user_id")
        found = _sender(
            recipient_id,
            user_id,
            raw.get("recipient_parent_user_id") or raw.get("parent_recipient_user_id"),
            contacts.find(recipient_id, user_id),
            "status",
            number,
        )
        recipient = found if isinstance(found, Sender) else None
    return StatusUpdate(
        message_id=_str(raw, "id"),
        status=DeliveryStatus.parse(raw_status),
        raw_status=raw_status,
        recipient_id=recipient_id,
        recipient=recipient,
        timestamp=_timestamp(raw),
        errors=errors,
        callback_data=_opt_str(raw, "biz_opaque_callback_data"),
        phone_number_id=number,
    )


def _preference(raw: dict, contacts: _Contacts, number: str | None) -> MarketingPreference | Unidentified:
    sender = _sender(
        raw.get("wa_id"),
        raw.get("user_id"),
        raw.get("parent_user_id"),
        contacts.find(_opt_str(raw, "wa_id"), _opt_str(raw, "user_id")),
        "preference",
        number,
    )
    if isinstance(sender, Unidentified):
        return sender
    return MarketingPreference(
        sender=sender,
        value=PreferenceValue.parse(_str(raw, "value")),
        category=_text(raw, "category"),
        detail=_opt_str(raw, "detail"),
        timestamp=_timestamp(raw),
        phone_number_id=number,
    )


# "User A changed from 4915112345678 to 4917798765432" / "... changed from DE.1 to DE.2"
_CHANGED_FROM_TO = re.compile(r"changed from (\S+?)[.,;]? to (\S+?)[.,;]?$")


def _system_rotation(raw: dict, number: str | None) -> Rotation | Unidentified | None:
    """A number or BSUID change (any spelling Meta used); None for other system notices."""
    system = _opt_dict(raw, "system")
    kind = _opt_str(system, "type") or ""
    if kind not in ("user_changed_number", "user_changed_user_id", "customer_changed_number"):
        return None
    old = [
        from_webhook(PHONE, raw.get("from")) or from_webhook(PHONE, system.get("customer")),
        from_webhook(BSUID, system.get("previous_user_id")),
        from_webhook(PARENT_BSUID, system.get("previous_parent_user_id")),
    ]
    new = [
        from_webhook(PHONE, system.get("wa_id")) or from_webhook(PHONE, system.get("new_wa_id")),
        from_webhook(BSUID, system.get("user_id")),
        from_webhook(PARENT_BSUID, system.get("parent_user_id")),
    ]
    # Before Aug 2026 the old BSUID (or number) was only in the body text.
    said = _CHANGED_FROM_TO.search(_opt_str(system, "body") or "")
    if said:
        for slot, raw_id in ((old, said.group(1)), (new, said.group(2))):
            try:
                parsed = parse_human(raw_id)
            except ValueError:
                continue
            index = (PHONE, BSUID, PARENT_BSUID).index(parsed.kind)
            slot[index] = slot[index] or parsed
    olds = tuple(i for i in old if i is not None)
    news = tuple(i for i in new if i is not None)
    if not olds and not news:
        return Unidentified("rotation", "no_identifier", number)
    return Rotation(olds, news, kind, _opt_str(raw, "id"), _timestamp(raw), number)


def _user_id_update(raw: dict, number: str | None) -> Rotation | Unidentified:
    """The legacy `user_id_update` field (March-August 2026)."""
    user_id, parent = _opt_dict(raw, "user_id"), _opt_dict(raw, "parent_user_id")
    phone = from_webhook(PHONE, raw.get("wa_id"))
    old = (from_webhook(BSUID, user_id.get("previous")), from_webhook(PARENT_BSUID, parent.get("previous")))
    new = (from_webhook(BSUID, user_id.get("current")), from_webhook(PARENT_BSUID, parent.get("current")))
    olds = tuple(i for i in old if i is not None)
    # The phone did not change: it names the user, so it goes with the new identifiers.
    news = tuple(i for i in (*new, phone) if i is not None)
    if not olds and not news:
        return Unidentified("rotation", "no_identifier", number)
    return Rotation(olds, news, "user_id_update", None, _timestamp(raw), number)


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
