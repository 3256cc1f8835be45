"""Read the evidence of an opt-out decision off the conversation (bot/store/evidence.py).

The conversation at `action_opt_out` holds everything: the customer's request (the message before
`action_check_opt_out` ran), each time the bot asked "Do you want to stop...?" (Rasa records the
response name of each bot message, `metadata.utter_action`, with its rendered text and buttons)
and the answer (the latest message). In immediate mode (actions/opt_out_mode.py) the request is
the latest message and nothing was asked. The WhatsApp channel adds to each message's metadata
the words as the customer sent them (`words`: the typed text before any cleaning, or the title of
the button they tapped), its message id, WhatsApp's timestamp and the message it replies to
(`context_id`: a button tap names the question it belongs to).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from bot.contract import ActionName, Metadata, Response
from bot.store.evidence import ConsentEvidence, Question


def opt_out_evidence(
    events: Sequence[dict[str, Any]], latest_message: dict[str, Any], language: str | None
) -> ConsentEvidence:
    """Pure: the evidence of the opt-out being decided by `latest_message` (the answer, or in
    immediate mode the request itself)."""
    check = _last_index(
        events, lambda e: e.get("event") == "action" and e.get("name") == ActionName.CHECK_OPT_OUT
    )
    request = None
    if check is not None:
        request_at = _last_index(events[:check], lambda e: e.get("event") == "user")
        request = events[request_at] if request_at is not None else None
    asked = _last_index(
        events,
        lambda e: (
            e.get("event") == "bot"
            and (e.get("metadata") or {}).get("utter_action") == Response.CONFIRMATION_QUESTION
        ),
    )
    question = None
    if asked is not None and (check is None or asked > check):
        question = _question(events[asked], (latest_message.get("metadata") or {}).get("context_id"))
    request = request or latest_message
    return ConsentEvidence(
        language=language,
        words=words_of(request, None),
        requested_at=_time_of(request),
        request_message_id=_message_id(request),
        question=question,
        answer=None if question is None else words_of(latest_message, question),
    )


def words_of(message: dict[str, Any], question: Question | None) -> str | None:
    """Pure: what the customer sent as they sent it: the channel's `words`, else the text Rasa
    heard; a payload ("/affirm") is named by its button's title when the question had it."""
    words = (message.get("metadata") or {}).get(Metadata.WORDS)
    if words:
        return str(words)
    text = message.get("text")
    if text and text.startswith("/") and question is not None:
        for title, payload in zip(question.buttons, question.payloads, strict=False):
            if payload == text:
                return title
    return text or None


def _question(event: dict[str, Any], context_id: str | None) -> Question:
    buttons = (event.get("data") or {}).get("buttons") or []
    return Question(
        response=Response.CONFIRMATION_QUESTION,
        text=event.get("text") or "",
        buttons=tuple(str(button.get("title", "")) for button in buttons),
        payloads=tuple(str(button.get("payload", "")) for button in buttons),
        message_id=context_id,
    )


def _time_of(message: dict[str, Any]) -> datetime | None:
    """WhatsApp's own timestamp of the message (Unix seconds), else when Rasa received it."""
    for seconds in ((message.get("metadata") or {}).get("timestamp"), message.get("timestamp")):
        try:
            return datetime.fromtimestamp(float(seconds), timezone.utc)
        except (TypeError, ValueError, OverflowError, OSError):
            continue
    return None


def _message_id(message: dict[str, Any]) -> str | None:
    return (message.get("metadata") or {}).get("message_id") or message.get("message_id")


def _last_index(events: Sequence[dict[str, Any]], matches: Any) -> int | None:
    for index in range(len(events) - 1, -1, -1):
        if matches(events[index]):
            return index
    return None
