"""The Cloud API body of a broadcast: a template whose quick-reply button leads to the opt-out flow.

https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.whatsapp.outbound import envelope

# Comes back as the button's payload when the customer taps it; quick_replies.yml maps it to the
# opt_out intent, so the tap starts the same confirmation as a typed STOP.
STOP_PAYLOAD = "STOP_PROMOTIONS"
# The "Stop promotions" quick reply is the template's first button (templates/promo_offer.json).
STOP_BUTTON_INDEX = 0


def template_message(
    to: str, template: str, language: str, params: Sequence[str], broadcast_id: str
) -> dict[str, Any]:
    """`biz_opaque_callback_data` comes back in every status webhook of the message."""
    components: list[dict[str, Any]] = []
    if params:
        components.append(
            {"type": "body", "parameters": [{"type": "text", "text": value} for value in params]}
        )
    components.append(
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": str(STOP_BUTTON_INDEX),
            "parameters": [{"type": "payload", "payload": STOP_PAYLOAD}],
        }
    )
    content = {"name": template, "language": {"code": language}, "components": components}
    return {**envelope(to, "template", content), "biz_opaque_callback_data": broadcast_id}
