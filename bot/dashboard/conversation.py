"""A customer's conversation, read from Rasa's tracker over its HTTP API.

Rasa keeps the words (the database keeps only message ids and delivery statuses), so the profile
asks the running Rasa server: `GET /conversations/<wa_id>/tracker?token=...`. When that fails the
page falls back to the delivery records in the database (`queries.delivery_records`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.broadcast.deliveries import Received
from bot.contract import message_kind
from bot.masking import mask_identifier

logger = logging.getLogger(__name__)

TRACKER_TIMEOUT = aiohttp.ClientTimeout(total=5)


@dataclass(frozen=True, slots=True)
class Line:
    at: datetime
    speaker: str  # customer | bot
    text: str
    detail: str  # the intent Rasa understood, the buttons the bot offered...


def _describe_bot_data(data: dict[str, Any]) -> str:
    buttons = data.get("buttons") or data.get("quick_replies") or []
    titles = [str(button.get("title", "")) for button in buttons if isinstance(button, dict)]
    if titles:
        return "buttons: " + " | ".join(titles)
    if data.get("custom"):
        return "custom message (e.g. a template)"
    if data.get("image"):
        return "image"
    return ""


def conversation_lines(events: Iterable[dict[str, Any]]) -> list[Line]:
    """What the customer said and what the bot answered, oldest first; other events are skipped."""
    lines = []
    for event in events:
        kind = event.get("event")
        if kind not in ("user", "bot"):
            continue
        at = datetime.fromtimestamp(float(event.get("timestamp") or 0), timezone.utc)
        text = str(event.get("text") or "")
        if kind == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            kind = message_kind(event.get("metadata"))
            details = [f"understood as {intent}" if intent else "", kind.value if kind else ""]
            lines.append(Line(at, "customer", text, ", ".join(d for d in details if d)))
        else:
            lines.append(Line(at, "bot", text, _describe_bot_data(event.get("data") or {})))
    return lines


def with_broadcasts(lines: list[Line], received: Iterable[Received]) -> list[Line]:
    """Pure: the conversation with the broadcast messages the customer was sent, in time order.
    Workers send broadcasts without a Rasa turn, so Rasa's events do not hold them."""
    sent = [
        Line(
            item.sent_at,
            "bot",
            f"Broadcast {item.broadcast_id}: template {item.template}",
            f"broadcast message, {item.status or 'sent'}",
        )
        for item in received
    ]
    return sorted([*lines, *sent], key=lambda line: line.at)


async def fetch_tracker_events(
    session: aiohttp.ClientSession, rasa_url: str, token: str, wa_id: str
) -> list[dict[str, Any]] | None:
    """The tracker's events, or None when the Rasa server cannot be asked (down, starting, 4xx/5xx)."""
    url = f"{rasa_url}/conversations/{quote(wa_id, safe='')}/tracker"
    try:
        async with session.get(url, params={"token": token}, timeout=TRACKER_TIMEOUT) as response:
            if response.status != 200:
                logger.warning(
                    "Rasa answered %s for the tracker of %s", response.status, mask_identifier(wa_id)
                )
                return None
            tracker = await response.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        logger.warning("could not read the tracker of %s from Rasa: %r", mask_identifier(wa_id), error)
        return None
    events = tracker.get("events") if isinstance(tracker, dict) else None
    return events if isinstance(events, list) else None
