"""Webhook bodies exactly as Meta sends them, for tests, the benchmark and the simulator.

Shapes follow https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
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


def message(
    wa_id: str,
    kind: str,
    content: dict[str, Any] | None,
    name: str = "Sheena Nelson",
    wamid: str | None = None,
    context_id: str | None = None,
    timestamp: int | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """One inbound message of any type, wrapped in a full notification to `phone_number_id`."""
    raw: dict[str, Any] = {
        "from": wa_id,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp or int(time.time())),
        "type": kind,
    }
    if content is not None:
        raw[kind] = content
    if context_id:
        raw["context"] = {"from": BUSINESS_NUMBER, "id": context_id}
    return notification(
        {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [raw]},
        phone_number_id=phone_number_id,
    )


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
    recipient_id: str,
    status_: str,
    error_code: int | None = None,
    timestamp: int | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": wamid,
        "status": status_,
        "timestamp": str(timestamp or int(time.time())),
        "recipient_id": recipient_id,
    }
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
    return notification({"statuses": [raw]})


def marketing_preference(wa_id: str, value: str, timestamp: int | None = None) -> dict[str, Any]:
    return notification(
        {
            "contacts": [{"wa_id": wa_id}],
            "user_preferences": [
                {
                    "wa_id": wa_id,
                    "detail": "User requested to stop marketing messages",
                    "category": "marketing_messages",
                    "value": value,
                    "timestamp": timestamp or int(time.time()),
                }
            ],
        },
        field="user_preferences",
    )
