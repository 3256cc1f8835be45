"""What a chat bubble shows, from a Cloud API message body the bot sent (pure).

The simulator's page draws these display models; it never interprets Cloud API bodies itself.
Templates are stored by name at Meta, so their text comes from our copies in `templates/`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT

TEMPLATES_DIR = PROJECT_ROOT / "templates"
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")


def load_template(name: str, templates_dir: Path = TEMPLATES_DIR) -> dict[str, Any] | None:
    """Our copy of an approved template (templates/<name>.json), or None."""
    if not _TEMPLATE_NAME.fullmatch(name):  # also keeps the name from walking out of the folder
        return None
    path = templates_dir / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def fill_placeholders(text: str, values: list[str]) -> str:
    """'{{1}}' -> values[0]; a placeholder without a value stays as it is."""

    def value(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return values[index] if 0 <= index < len(values) else match.group(0)

    return _PLACEHOLDER.sub(value, text)


def _components(definition: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    return [c for c in (definition or {}).get("components", []) if str(c.get("type", "")).upper() == kind]


def template_bubble(content: dict[str, Any], templates_dir: Path = TEMPLATES_DIR) -> dict[str, Any]:
    name = str(content.get("name", ""))
    definition = load_template(name, templates_dir)
    sent = content.get("components") or []
    params = [
        str(p.get("text", ""))
        for c in sent
        if c.get("type") == "body"
        for p in c.get("parameters", [])
        if p.get("type") == "text"
    ]
    body = _components(definition, "BODY")
    footer = _components(definition, "FOOTER")
    labels = [
        str(b.get("text", "")) for c in _components(definition, "BUTTONS") for b in c.get("buttons", [])
    ]
    quick_replies = []
    for component in sent:
        if component.get("type") != "button" or component.get("sub_type") != "quick_reply":
            continue
        index = int(component.get("index", 0))
        for parameter in component.get("parameters", []):
            if parameter.get("type") == "payload":
                payload = str(parameter.get("payload", ""))
                label = labels[index] if index < len(labels) else payload
                quick_replies.append({"payload": payload, "text": label})
    return {
        "kind": "template",
        "name": name,
        "text": fill_placeholders(str(body[0].get("text", "")), params)
        if body
        else f"Template {name} ({', '.join(params) or 'no parameters'})",
        "footer": str(footer[0].get("text", "")) if footer else "",
        "quick_replies": quick_replies,
    }


def outbound_bubble(body: dict[str, Any], templates_dir: Path = TEMPLATES_DIR) -> dict[str, Any]:
    """The display model of one message the bot sent (the body it POSTed to the Graph API)."""
    kind = body.get("type")
    content = body.get(str(kind)) or {}
    if kind == "text":
        return {"kind": "text", "text": str(content.get("body", ""))}
    if kind == "interactive":
        text = str((content.get("body") or {}).get("text", ""))
        footer = str((content.get("footer") or {}).get("text", ""))
        action = content.get("action") or {}
        if content.get("type") == "button":
            buttons = [
                {"id": str(b["reply"]["id"]), "title": str(b["reply"]["title"])}
                for b in action.get("buttons", [])
                if isinstance(b.get("reply"), dict)
            ]
            return {"kind": "buttons", "text": text, "footer": footer, "buttons": buttons}
        if content.get("type") == "list":
            sections = [
                {
                    "title": str(section.get("title", "")),
                    "rows": [
                        {
                            "id": str(row.get("id", "")),
                            "title": str(row.get("title", "")),
                            "description": str(row.get("description", "")),
                        }
                        for row in section.get("rows", [])
                    ],
                }
                for section in action.get("sections", [])
            ]
            label = str(action.get("button", "Choose"))
            return {"kind": "list", "text": text, "footer": footer, "button": label, "sections": sections}
    if kind == "template":
        return template_bubble(content, templates_dir)
    if kind == "image":
        # Shown as its address, not loaded: the page stays offline and fetches nothing it was sent.
        return {
            "kind": "image",
            "text": str(content.get("caption", "")),
            "link": str(content.get("link", "")),
        }
    return {"kind": "other", "text": f"({kind or 'unknown'} message: not shown by the simulator)"}
