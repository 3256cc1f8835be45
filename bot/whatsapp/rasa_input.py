"""What Rasa hears for each customer message: the one place that decides what may carry an intent.

Rasa turns any text that starts with `/` (after stripping whitespace) into a forced intent. A
customer must never be able to type `/EXTERNAL_abandoned_cart{...}` or `/opt_out` and drive the
bot, so:
- typed text loses every leading character that is a slash, a slash look-alike, whitespace, or
  invisible (format and control characters, combining marks). The loop runs until the first
  character is none of these, so the result can never start with `/`, however many rounds of
  `/ /`, zero-width spaces or RTL marks precede it;
- ids of reply buttons and list rows pass only when they are exactly a payload of a button the
  bot's own domain sends (`ButtonPayloads`); any other id is read as if the customer typed the
  button's title;
- template quick replies are looked up in the quick-reply table (payloads and localized labels);
  a known one becomes its `/intent`, an unknown one is treated as if the customer typed its label.
No payload may name an `EXTERNAL_` intent: those come only through Rasa's authenticated API.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bot import yaml_files
from bot.whatsapp.inbound import ButtonReply, InboundMessage, ListReply, QuickReply, TextMessage

EXTERNAL_PREFIX = "EXTERNAL_"
# Characters that look like a slash without being one (Unicode confusables of U+002F and U+005C
# that are not letters). Fullwidth and small forms are caught by their NFKC form instead.
SLASH_LOOKALIKES = frozenset(
    "\u1735\u2041\u2044\u2215\u2571\u2572\u27cb\u27cd\u29f5\u29f8\u29f9\u2afb\u2afd\u2e4a\u31d3"
    "\U0001d23a\U0001f67c\U0001f67d"
)


def _is_noise_before_text(char: str) -> bool:
    """Whitespace, a slash or anything that looks like one, or a character nobody sees
    (categories C: control, format such as ZWSP, BOM and RTL marks, unassigned; Z: separators;
    M: combining marks, which have nothing to combine with at the start)."""
    return (
        char.isspace()
        or unicodedata.category(char)[0] in "CZM"
        or char in SLASH_LOOKALIKES
        or unicodedata.normalize("NFKC", char).startswith(("/", "\\"))
    )


def neutralise_typed(text: str) -> str:
    """Typed text can never be an intent payload: drop everything before its first real character."""
    start = 0
    while start < len(text) and _is_noise_before_text(text[start]):
        start += 1
    return text[start:]


def is_safe_payload(payload: str) -> bool:
    return not neutralise_typed(payload).startswith(EXTERNAL_PREFIX)


def normalise_label(label: str) -> str:
    """Case-, accent-, punctuation- and space-insensitive key: 'Parar promoções!' -> 'parar promocoes'."""
    decomposed = unicodedata.normalize("NFKD", label.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", plain).split())


class QuickReplyTable:
    """Template quick-reply payloads and labels -> intent names (`quick_replies.yml`)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._intents = {normalise_label(key): intent for key, intent in mapping.items()}

    @classmethod
    def from_file(cls, path: Path) -> QuickReplyTable:
        document = yaml_files.load(path) or {}
        table: dict[str, str] = {}
        for intent, keys in (document.get("intents") or {}).items():
            for key in keys:
                table[str(key)] = str(intent)
        return cls(table)

    def intent_for(self, *keys: str) -> str | None:
        for key in keys:
            intent = self._intents.get(normalise_label(key))
            if intent:
                return intent
        return None


class ButtonPayloads:
    """The payloads of the buttons in the domain's responses: the only button and list-row ids the
    bot itself ever sends, so the only ones a tap can honestly carry back."""

    def __init__(self, payloads: Iterable[str]) -> None:
        self._payloads = frozenset(p for p in payloads if is_safe_payload(p))

    @classmethod
    def from_domain(cls, domain: Mapping[str, Any]) -> ButtonPayloads:
        sent = (_as_sent(payload) for payload in _response_payloads(domain))
        return cls(payload for payload in sent if payload is not None)

    @classmethod
    def from_file(cls, path: Path) -> ButtonPayloads:
        return cls.from_domain(yaml_files.load(path) or {})

    def __contains__(self, payload: object) -> bool:
        return payload in self._payloads


def _response_payloads(domain: Mapping[str, Any]) -> Iterator[str]:
    for variations in (domain.get("responses") or {}).values():
        for variation in variations or ():
            if not isinstance(variation, dict):
                continue
            for key in ("buttons", "quick_replies"):
                for button in variation.get(key) or ():
                    if isinstance(button, dict) and button.get("payload") is not None:
                        yield str(button["payload"])


def _as_sent(payload: str) -> str | None:
    """Rasa fills slots into responses with `str.format`, so `/inform{{"k":"v"}}` in the domain is
    sent as `/inform{"k":"v"}`. A payload with a slot in it differs per conversation and cannot
    be known ahead: None (a tap on it then counts as its title, typed)."""
    try:
        return payload.format()
    except (KeyError, IndexError, ValueError):
        return None


def rasa_text(message: InboundMessage, quick_replies: QuickReplyTable, buttons: ButtonPayloads) -> str | None:
    """The text to hand to Rasa, or None when the message carries nothing Rasa can read."""
    if isinstance(message, TextMessage):
        return neutralise_typed(message.body)
    if isinstance(message, ButtonReply | ListReply):
        payload = message.button_id if isinstance(message, ButtonReply) else message.row_id
        return payload if payload in buttons else neutralise_typed(message.title)
    if isinstance(message, QuickReply):
        intent = quick_replies.intent_for(message.payload, message.text)
        if intent and is_safe_payload(intent):
            return f"/{intent}"
        return neutralise_typed(message.text or message.payload)
    return None
