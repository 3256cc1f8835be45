"""What the end-to-end fault, replica and security tests look at: replies, trackers, the customer store."""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from typing import Any

from bot.db import engine_for, transaction
from bot.store.customers import profile
from bot.store.identities import conversation_id
from tests.rasa_servers import AUTH_TOKEN, RunningBot

CONFIRMATION = "stop receiving marketing messages"
OPTED_OUT = "won't receive marketing messages"
CONFIRM_TITLE = "Yes, stop them"

_numbers = itertools.count(4915200000001)


def new_customer() -> str:
    return str(next(_numbers))


def reply_text(body: dict[str, Any]) -> str:
    if body["type"] == "interactive":
        return body["interactive"]["body"]["text"]
    return body["text"]["body"]


def last_text(bot: RunningBot, wa_id: str) -> str:
    return reply_text(bot.sent_to(wa_id)[-1])


def asks_for_confirmation(bot: RunningBot, wa_id: str) -> bool:
    sent = bot.sent_to(wa_id)
    return bool(sent) and sent[-1]["type"] == "interactive" and CONFIRMATION in reply_text(sent[-1])


def customer(bot: RunningBot, wa_id: str) -> dict[str, Any] | None:
    with transaction(engine_for(bot.database_url)) as conn:
        return profile(conn, wa_id)


def opt_out_tag(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    """The customer's OPT_OUT tag in a profile (`customer`, `customers show`), None without one."""
    return next((t for t in (profile or {}).get("tags", []) if t["name"] == "OPT_OUT"), None)


def opt_out_count(bot: RunningBot, wa_id: str) -> tuple[int, int]:
    """(OPT_OUT tags, `opt_out` consent events) of the customer: (1, 1) when it landed exactly once."""
    found = customer(bot, wa_id) or {"tags": [], "consent_history": []}
    return (
        sum(tag["name"] == "OPT_OUT" for tag in found["tags"]),
        sum(event["kind"] == "opt_out" for event in found["consent_history"]),
    )


def rasa_api(bot: RunningBot, path: str, token: str | None = AUTH_TOKEN) -> tuple[int, Any]:
    """GET from this bot's Rasa HTTP API: (status, parsed JSON body or None)."""
    url = f"http://127.0.0.1:{bot.rasa_port}{path}" + ("" if token is None else f"?token={token}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def conversation(bot: RunningBot, who: str) -> str:
    """The Rasa conversation (sender id) of the customer with this number, BSUID or key."""
    with transaction(engine_for(bot.database_url)) as conn:
        return conversation_id(conn, who) or who


def tracker_events(bot: RunningBot, wa_id: str) -> list[dict[str, Any]]:
    status, tracker = rasa_api(bot, f"/conversations/{conversation(bot, wa_id)}/tracker")
    assert status == 200, status
    return tracker["events"]


def user_turns(events: list[dict[str, Any]]) -> list[str]:
    return [event["text"] for event in events if event["event"] == "user"]
