"""`python -m bot templates show NAME --language xx`: a template ready to submit to Meta.

Our copies in `templates/` are written in English with a placeholder address. This prints one for
a language: the opt-out buttons' labels in that language (bot/opt_out_link/texts.py) and the
opt-out link on BOT_PUBLIC_URL, the address the link page is served on. The body is the
business's own text and stays as written.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from typing import Any

from bot.broadcast.template import LINK_PLACEHOLDER, TEMPLATES_DIR
from bot.opt_out_link.settings import LINK_PATH, public_url
from bot.opt_out_link.texts import TEXTS, language_of, texts_for
from bot.settings import from_env

EXAMPLE_TOKEN = "WzEsNDIsImItMSIsMTc5MDAwMDAwMF0.MiZxnjB7W6jbUEEMFdc3T4r-"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("templates", help="marketing templates ready to submit to Meta")
    commands = parser.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    show = commands.add_parser(
        "show",
        help="print templates/NAME.json for a language, with the opt-out link on BOT_PUBLIC_URL",
    )
    show.add_argument("name", help="e.g. promo_offer")
    show.add_argument(
        "--language", default="en_US", help=f"Meta's language code; labels exist for {', '.join(TEXTS)}"
    )
    show.set_defaults(handler=_show)


def localised(definition: dict[str, Any], language: str, base_url: str) -> dict[str, Any]:
    """Pure: the definition with `language`, localised opt-out labels and the link on `base_url`."""
    texts = texts_for(language)
    result = copy.deepcopy(definition)
    result["language"] = language
    for component in result.get("components", []):
        if str(component.get("type", "")).upper() != "BUTTONS":
            continue
        for button in component.get("buttons", []):
            kind = str(button.get("type", "")).upper()
            if kind == "QUICK_REPLY":
                button["text"] = texts.quick_reply_label
            elif kind == "URL" and str(button.get("url", "")).endswith(LINK_PATH + LINK_PLACEHOLDER):
                button["text"] = texts.button_label
                button["url"] = f"{base_url}{LINK_PATH}{LINK_PLACEHOLDER}"
                button["example"] = [f"{base_url}{LINK_PATH}{EXAMPLE_TOKEN}"]
    return result


def _show(args: argparse.Namespace) -> int:
    path = TEMPLATES_DIR / f"{os.path.basename(args.name)}.json"
    if not path.is_file():
        print(f"no template {path}", file=sys.stderr)
        return 1
    try:
        base_url = public_url(from_env().public_url)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    if not base_url:
        print(
            "set BOT_PUBLIC_URL (e.g. https://bot.example.com): the opt-out link opens there", file=sys.stderr
        )
        return 1
    if language_of(args.language) != args.language.replace("-", "_").split("_")[0].lower():
        print(f"note: no labels for {args.language}; English ones used", file=sys.stderr)
    definition = json.loads(path.read_text(encoding="utf-8"))
    print(json.dumps(localised(definition, args.language, base_url), ensure_ascii=False, indent=2))
    return 0
