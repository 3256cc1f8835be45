"""Webhook bodies exactly as Meta sends them, for tests, the benchmark and the simulator.

Shapes follow https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
and, for business-scoped user ids (BSUIDs) and usernames, Meta's BSUID page as summarised in
notes/whatsapp-bsuid.md: `user_id` / `from_user_id` / `recipient_user_id` carry the BSUID, and a
customer whose number WhatsApp withholds has no `wa_id` / `from` / `recipient_id` at all (the
keys are left out, not empty). Pass `wa_id=None` and a `user_id` for such a "username customer".
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

BUSINESS_NUMBER = "15550783881"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"

_counter = itertools.count(1)


def new_wamid() -> str:
    return f"wamid.HBgL{uuid.uuid4().hex.upper()}{next(_counter)}"


def notification(
    value: dict[str, Any], field: str = "messages", phone_number_id: str = PHONE_NUMBER_ID
) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS_NUMBER, "phone_number_id": phone_number_id},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": field, "value": value}]}],
    }


def contact(
    wa_id: str | None,
    user_id: str | None = None,
    parent_user_id: str | None = None,
    name: str | None = "Sheena Nelson",
    username: str | None = None,
) -> dict[str, Any]:
    """A `contacts[]` entry: absent identifiers are left out, as Meta does."""
    profile = {k: v for k, v in (("name", name), ("username", username)) if v}
    found = {"profile": profile, "wa_id": wa_id, "user_id": user_id, "parent_user_id": parent_user_id}
    return {k: v for k, v in found.items() if v}


def message(
    wa_id: str | None,
    kind: str,
    content: dict[str, Any] | None,
    name: str = "Sheena Nelson",
    wamid: str | None = None,
    context_id: str | None = None,
    timestamp: int | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
    user_id: str | None = None,
    parent_user_id: str | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """One inbound message of any type, wrapped in a full notification to `phone_number_id`.
    `wa_id=None`: the number is withheld (`from` left out); `user_id` adds `from_user_id`."""
    raw: dict[str, Any] = {
        "from": wa_id,
        "from_user_id": user_id,
        "from_parent_user_id": parent_user_id,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp or int(time.time())),
        "type": kind,
    }
    raw = {k: v for k, v in raw.items() if v is not None}
    if content is not None:
        raw[kind] = content
    if context_id:
        raw["context"] = {"from": BUSINESS_NUMBER, "id": context_id}
    sender = contact(wa_id, user_id, parent_user_id, name, username)
    return notification({"contacts": [sender], "messages": [raw]}, phone_number_id=phone_number_id)


def text(wa_id: str, body: str, **kwargs: Any) -> dict[str, Any]:
    return message(wa_id, "text", {"body": body}, **kwargs)


def button_reply(wa_id: str, button_id: str, title: str, **kwargs: Any) -> dict[str, Any]:
    content = {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
    return message(wa_id, "interactive", content, **kwargs)


def list_reply(wa_id: str, row_id: str, title: str, **kwargs: Any) -> dict[str, Any]:
    content = {"type": "list_reply", "list_reply": {"id": row_id, "title": title, "description": ""}}
    return message(wa_id, "interactive", content, **kwargs)


def quick_reply(wa_id: str, payload: str, label: str, **kwargs: Any) -> dict[str, Any]:
    """A tap on a template's quick-reply button: `type: "button"`, not `interactive`."""
    return message(wa_id, "button", {"payload": payload, "text": label}, **kwargs)


def status(
    wamid: str,
    recipient_id: str | None,
    status_: str,
    error_code: int | None = None,
    timestamp: int | None = None,
    callback_data: str | None = None,
    recipient_user_id: str | None = None,
    recipient_parent_user_id: str | None = None,
) -> dict[str, Any]:
    """A status of a message the business sent. Sent to a phone number, sent/delivered/read carry
    the BSUID too (`recipient_user_id`), and a `contacts` block unless it `failed`."""
    raw: dict[str, Any] = {
        "id": wamid,
        "status": status_,
        "timestamp": str(timestamp or int(time.time())),
        "recipient_id": recipient_id,
        "recipient_user_id": recipient_user_id,
        "recipient_parent_user_id": recipient_parent_user_id,
    }
    raw = {k: v for k, v in raw.items() if v is not None}
    if callback_data:
        raw["biz_opaque_callback_data"] = callback_data
    if error_code is not None:
        raw["errors"] = [
            {
                "code": error_code,
                "title": "Error",
                "message": "Error",
                "error_data": {"details": "Message failed"},
            }
        ]
    value: dict[str, Any] = {"statuses": [raw]}
    if recipient_user_id and status_ != "failed":
        value["contacts"] = [contact(recipient_id, recipient_user_id, recipient_parent_user_id, None)]
    return notification(value)


def marketing_preference(
    wa_id: str | None,
    value: str,
    timestamp: int | None = None,
    user_id: str | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """WhatsApp's own stop / resume promotions; `wa_id=None` for a customer whose number is withheld."""
    preference = {
        "wa_id": wa_id,
        "user_id": user_id,
        "detail": "User requested to stop marketing messages",
        "category": "marketing_messages",
        "value": value,
        "timestamp": timestamp or int(time.time()),
    }
    return notification(
        {
            "contacts": [contact(wa_id, user_id, None, None, username)],
            "user_preferences": [{k: v for k, v in preference.items() if v is not None}],
        },
        field="user_preferences",
    )


def number_changed(
    old_wa_id: str,
    new_wa_id: str,
    new_user_id: str | None = None,
    previous_user_id: str | None = None,
    wamid: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A `user_changed_number` system message (Aug 2026 shape): `from` is the OLD number, and a
    number change regenerates the BSUID too. No `contacts` block."""
    system = {
        "type": "user_changed_number",
        "body": f"User Sheena Nelson changed from {old_wa_id} to {new_wa_id}",
        "wa_id": new_wa_id,
        "user_id": new_user_id,
        "previous_user_id": previous_user_id,
    }
    raw = {
        "from": old_wa_id,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp or int(time.time())),
        "type": "system",
        "system": {k: v for k, v in system.items() if v is not None},
    }
    return notification({"messages": [raw]})


def user_id_changed(
    previous_user_id: str | None,
    new_user_id: str,
    body_only: bool = False,
    wamid: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A `user_changed_user_id` system message without a phone number. `body_only`: the pre-Aug-2026
    shape, where the old BSUID was only in the body text."""
    system: dict[str, Any] = {
        "type": "user_changed_user_id",
        "body": f"User Sheena Nelson changed from {previous_user_id} to {new_user_id}",
        "user_id": new_user_id,
    }
    if not body_only:
        system["previous_user_id"] = previous_user_id
    raw = {
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp or int(time.time())),
        "type": "system",
        "system": system,
    }
    return notification({"messages": [raw]})


def contact_request_reply(user_id: str, shared_wa_id: str, **kwargs: Any) -> dict[str, Any]:
    """The customer tapped the phone-number request button: a `contacts` message whose card has
    `origin: contact_request` and their own number (no vCard)."""
    card = {
        "origin": "contact_request",
        "name": {"formatted_name": "Sheena Nelson"},
        "phones": [{"phone": f"+{shared_wa_id}", "wa_id": shared_wa_id, "type": "MOBILE"}],
    }
    payload = message(None, "contacts", None, user_id=user_id, **kwargs)
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["contacts"] = [card]
    return payload
