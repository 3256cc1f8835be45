"""The Cloud API body of a broadcast: a marketing template with its opt-out buttons filled in.

A template's buttons are fixed when Meta approves it; a send only supplies their parameters, by
button index. Our copy of the template (`templates/<name>.json`, what the business submitted) says
which buttons it has:
- the first QUICK_REPLY is "Stop promotions": it comes back with STOP_PAYLOAD, which
  quick_replies.yml maps to the opt_out intent, so a tap starts the same confirmation as a typed STOP;
- a URL button whose address ends in `/webhooks/whatsapp/opt-out/{{1}}` is the opt-out link: its
  `{{1}}` is a per-recipient signed token (bot.opt_out_link).
Businesses keep either or both. A template we have no copy of is assumed to have the quick reply
first and no link, as every template of this project had before the link existed.

https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT
from bot.opt_out_link.settings import LINK_PATH
from bot.whatsapp.outbound import envelope

TEMPLATES_DIR = PROJECT_ROOT / "templates"
STOP_PAYLOAD = "STOP_PROMOTIONS"
LINK_PLACEHOLDER = "{{1}}"


@dataclass(frozen=True, slots=True)
class TemplateButtons:
    """Indexes of the opt-out buttons in a template's BUTTONS component (None: it has none)."""

    stop_quick_reply: int | None = 0
    opt_out_link: int | None = None


def buttons_of(definition: dict[str, Any]) -> TemplateButtons:
    """Pure: read a template definition (Meta's creation format) for its opt-out buttons."""
    buttons: list[Any] = []
    for component in definition.get("components", []):
        if isinstance(component, dict) and str(component.get("type", "")).upper() == "BUTTONS":
            buttons = component.get("buttons", [])
    stop = link = None
    for index, button in enumerate(buttons):
        kind = str(button.get("type", "")).upper() if isinstance(button, dict) else ""
        if kind == "QUICK_REPLY" and stop is None:
            stop = index
        url = str(button.get("url", "")) if kind == "URL" else ""
        if url.endswith(LINK_PATH + LINK_PLACEHOLDER) and link is None:
            link = index
    return TemplateButtons(stop_quick_reply=stop, opt_out_link=link)


def load_buttons(name: str, templates_dir: Path = TEMPLATES_DIR) -> TemplateButtons:
    """The opt-out buttons of template `name`, from our copy; the default layout without one."""
    path = templates_dir / f"{Path(name).name}.json"
    if not path.is_file():
        return TemplateButtons()
    return buttons_of(json.loads(path.read_text(encoding="utf-8")))


def template_message(
    to: str,
    template: str,
    language: str,
    params: Sequence[str],
    broadcast_id: str,
    buttons: TemplateButtons = TemplateButtons(),  # frozen, so one shared default is safe
    link_token: str | None = None,
) -> dict[str, Any]:
    """`biz_opaque_callback_data` comes back in every status webhook of the message.

    ValueError when the template has the opt-out link and no token is given: Meta would refuse
    the message, and it must never go out with a link that does not work.
    """
    components: list[dict[str, Any]] = []
    if params:
        components.append(
            {"type": "body", "parameters": [{"type": "text", "text": value} for value in params]}
        )
    if buttons.stop_quick_reply is not None:
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": str(buttons.stop_quick_reply),
                "parameters": [{"type": "payload", "payload": STOP_PAYLOAD}],
            }
        )
    if buttons.opt_out_link is not None:
        if not link_token:
            raise ValueError(f"template {template!r} has an opt-out link: a token is needed")
        components.append(
            {
                "type": "button",
                "sub_type": "url",
                "index": str(buttons.opt_out_link),
                "parameters": [{"type": "text", "text": link_token}],
            }
        )
    content = {"name": template, "language": {"code": language}, "components": components}
    return {**envelope(to, "template", content), "biz_opaque_callback_data": broadcast_id}
