"""The contract between custom actions and the WhatsApp channel for work that must not be lost.

Rasa catches exceptions raised by custom actions and carries on with the turn, so an action that
fails to save an opt-out cannot make the webhook fail by raising. Instead it dispatches this
custom message; the WhatsApp output channel raises on it, which aborts the turn before Rasa saves
the tracker, and the webhook answers non-200 so that WhatsApp delivers the message again.
"""

from typing import Any

RETRY_TURN_KEY = "retry_turn"


def retry_turn(reason: str) -> dict[str, Any]:
    return {RETRY_TURN_KEY: reason}
