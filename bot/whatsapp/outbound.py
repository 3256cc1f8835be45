"""Cloud API message bodies built from what Rasa wants to say, within WhatsApp's limits.

https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages
https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.store.identities import Address

TEXT_LIMIT = 4096
INTERACTIVE_BODY_LIMIT = 1024
MAX_REPLY_BUTTONS = 3
BUTTON_TITLE_LIMIT = 20
BUTTON_ID_LIMIT = 256
MAX_LIST_ROWS = 10
ROW_ID_LIMIT = 200
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
LIST_BUTTON_LABEL = "Choose"


@dataclass(frozen=True, slots=True)
class Button:
    title: str
    payload: str


def envelope(to: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: content,
    }


def addressed(body: dict[str, Any], address: Address) -> dict[str, Any]:
    """The body sent to `address`: `to` for a phone number, `recipient` for a BSUID, never both
    (with both, WhatsApp uses `to` and ignores `recipient`)."""
    rest = {k: v for k, v in body.items() if k not in ("to", "recipient")}
    return {
        "messaging_product": rest.pop("messaging_product", "whatsapp"),
        address.field: address.value,
        **rest,
    }


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split at paragraph, line or word boundaries where possible, never beyond `limit`."""
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not chunks:
        chunks.append(rest)
    return chunks


def text_messages(to: str, text: str) -> list[dict[str, Any]]:
    return [envelope(to, "text", {"preview_url": False, "body": chunk}) for chunk in split_text(text)]


def image_message(to: str, url: str, caption: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = {"link": url}
    if caption:
        image["caption"] = caption[:INTERACTIVE_BODY_LIMIT]
    return envelope(to, "image", image)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unique_titles(titles: Iterable[str], limit: int) -> list[str]:
    """Truncate to the limit and make titles unique (WhatsApp rejects duplicates)."""
    seen: set[str] = set()
    result = []
    for title in titles:
        candidate = _truncate(title.strip() or "-", limit)
        n = 2
        while candidate in seen:
            suffix = f" {n}"
            candidate = _truncate(title.strip(), limit - len(suffix)) + suffix
            n += 1
        seen.add(candidate)
        result.append(candidate)
    return result


def button_messages(to: str, text: str, buttons: Sequence[Button]) -> list[dict[str, Any]]:
    """1-3 buttons: reply buttons; 4-10: a list message; more: numbered text.

    A payload longer than WhatsApp allows for an id cannot be sent as a button without losing it,
    so such button sets fall back to numbered text as well.
    """
    if not buttons:
        return text_messages(to, text)
    body = text if text.strip() else "Please choose:"
    fits_body = len(body) <= INTERACTIVE_BODY_LIMIT
    if (
        fits_body
        and len(buttons) <= MAX_REPLY_BUTTONS
        and all(len(b.payload) <= BUTTON_ID_LIMIT for b in buttons)
    ):
        titles = _unique_titles((b.title for b in buttons), BUTTON_TITLE_LIMIT)
        return [
            envelope(
                to,
                "interactive",
                {
                    "type": "button",
                    "body": {"text": body},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": b.payload, "title": title}}
                            for b, title in zip(buttons, titles, strict=True)
                        ]
                    },
                },
            )
        ]
    if fits_body and len(buttons) <= MAX_LIST_ROWS and all(len(b.payload) <= ROW_ID_LIMIT for b in buttons):
        titles = _unique_titles((b.title for b in buttons), ROW_TITLE_LIMIT)
        rows = []
        for b, title in zip(buttons, titles, strict=True):
            row: dict[str, Any] = {"id": b.payload, "title": title}
            if len(b.title) > ROW_TITLE_LIMIT:
                row["description"] = _truncate(b.title, ROW_DESCRIPTION_LIMIT)
            rows.append(row)
        return [
            envelope(
                to,
                "interactive",
                {
                    "type": "list",
                    "body": {"text": body},
                    "action": {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]},
                },
            )
        ]
    numbered = "\n".join(f"{i}. {b.title}" for i, b in enumerate(buttons, start=1))
    return text_messages(to, f"{text}\n\n{numbered}" if text else numbered)


def custom_message(to: str, custom: dict[str, Any]) -> dict[str, Any]:
    """A Cloud API body from a response's `custom:` block.

    Either a complete body with a `type` (template, location, ...) or `{"template": {...}}`;
    the recipient and product fields are always ours.
    """
    if "type" in custom:
        kind = str(custom["type"])
        return {**custom, "messaging_product": "whatsapp", "to": to, "type": kind}
    if len(custom) == 1:
        ((kind, content),) = custom.items()
        return envelope(to, str(kind), content)
    raise ValueError("custom WhatsApp message needs a 'type' or exactly one message object")
