"""What actions need to know about the customer behind a conversation and its messages.

A conversation's sender id is the customer key (bot/store/identities.py); every store function
takes it as the customer. The identifier a message came under (phone number or BSUID) is in its
metadata, for the consent history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from bot.contract import CONSENT_SOURCE, Intent, MessageKind, Metadata, message_kind
from bot.db import run_sync, transaction
from bot.store.identifiers import Identifier

T = TypeVar("T")


async def run_store(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a customer-store function in one short transaction, off the action server's loop."""

    def in_transaction() -> T:
        with transaction() as conn:
            return func(conn, *args, **kwargs)

    return await run_sync(in_transaction)


def message_id_of(message: dict[str, Any]) -> str | None:
    return (message.get("metadata") or {}).get(Metadata.MESSAGE_ID) or message.get("message_id")


def identifier_of(message: dict[str, Any]) -> Identifier | None:
    """The identifier the WhatsApp channel says the message came under, if any."""
    metadata = message.get("metadata") or {}
    try:
        return Identifier(metadata[Metadata.IDENTIFIER_KIND], metadata[Metadata.IDENTIFIER_VALUE])
    except (KeyError, TypeError, ValueError):
        return None


def optout_source(events: Iterable[dict[str, Any]]) -> str:
    """How the customer asked to stop: their latest `opt_out` message, typed or tapped."""
    for event in reversed(list(events)):
        if event.get("event") != "user":
            continue
        if ((event.get("parse_data") or {}).get("intent") or {}).get("name") == Intent.OPT_OUT:
            kind = message_kind(event.get("metadata"))
            return CONSENT_SOURCE[kind or MessageKind.TEXT]
    return CONSENT_SOURCE[MessageKind.TEXT]
