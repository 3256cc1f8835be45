"""What Rasa hears for each customer message: the one place that decides what may carry an intent.

Rasa's RegexMessageHandler turns any text starting with `/` into a forced intent. A customer must
never be able to type `/EXTERNAL_send_broadcast` or `/opt_out{...}` and drive the bot, so:
- typed text loses its leading slashes and goes through NLU like any other text;
- ids of reply buttons and list rows, which only the bot itself can have sent, pass as they are,
  except that no payload may name an `EXTERNAL_` intent (those come only through Rasa's API);
- template quick replies are looked up in the quick-reply table (payloads and localized labels);
  a known one becomes its `/intent`, an unknown one is treated as if the customer typed its label.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import yaml

from bot.whatsapp.inbound import ButtonReply, InboundMessage, ListReply, QuickReply, TextMessage

EXTERNAL_PREFIX = "EXTERNAL_"


def neutralise_typed(text: str) -> str:
    """Typed text can never be an intent payload: drop the leading slashes."""
    return text.lstrip().lstrip("/").lstrip()


def is_safe_payload(payload: str) -> bool:
    return not payload.lstrip().lstrip("/").startswith(EXTERNAL_PREFIX)


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
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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


def rasa_text(message: InboundMessage, quick_replies: QuickReplyTable) -> str | None:
    """The text to hand to Rasa, or None when the message carries nothing Rasa can read."""
    if isinstance(message, TextMessage):
        return neutralise_typed(message.body)
    if isinstance(message, ButtonReply | ListReply):
        payload = message.button_id if isinstance(message, ButtonReply) else message.row_id
        return payload if is_safe_payload(payload) else neutralise_typed(message.title)
    if isinstance(message, QuickReply):
        intent = quick_replies.intent_for(message.payload, message.text)
        if intent and is_safe_payload(intent):
            return f"/{intent}"
        return neutralise_typed(message.text or message.payload)
    return None
