"""The opt-out link end to end, in a real browser at a phone's size, from a real broadcast.

Starts the action server, the Rasa server and the Graph API stand-in (tests/rasa_servers.py), runs
`python -m bot broadcast` (English to a phone customer, a customer known only by a BSUID and one
who will keep the messages; Spanish to a Spanish customer), takes each link from the template
message the stand-in received (the URL button's dynamic suffix, on the address of our copy of the
template), checks that link previews (GET, HEAD) write nothing, then runs
tests/browser/opt_out_link.mjs: Debian's chromium, 390x844 at 3x, JavaScript off. Last, the
customer store must hold exactly what the customers chose. Screenshots:
results/screenshots/opt-out-link-*.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.broadcast.template import LINK_PLACEHOLDER, TEMPLATES_DIR, load_buttons
from bot.business import business_name
from tests.browser_tools import CHROMIUM, SCREENSHOTS, playwright_dir
from tests.rasa_servers import RunningBot, module_bot

pytestmark = pytest.mark.rasa

PHONE = "4915200000301"
BSUID_ONLY = "DE.4915200000302"  # a username customer whose number WhatsApp hides
KEEPS = "4915200000303"
SPANISH = "34612000304"
TAG_EN, TAG_ES = "LINK_EN", "LINK_ES"
# What link previews send (WhatsApp itself, Facebook's crawler, Slack, Telegram, X).
PREVIEW_AGENTS = (
    "WhatsApp/2.24.6.77 A",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "TelegramBot (like TwitterBot)",
    "Twitterbot/1.0",
)


@pytest.fixture(scope="module")
def playwright() -> Path:
    return playwright_dir()


bot = module_bot("opt-out-link")


def broadcast(bot: RunningBot, tag: str, language: str, broadcast_id: str) -> None:
    result = bot.cli(
        "broadcast", "--template", "promo_offer", "--language", language, "--param", "20% off shoes",
        "--tag", tag, "--id", broadcast_id,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def link_sent_to(bot: RunningBot, who: str) -> tuple[str, str]:
    """(the URL the customer's WhatsApp opens, the template message's wamid). The base is our copy
    of the template's URL button, as Meta holds it, re-rooted at this bot's loopback address (a
    reverse proxy's job in production); the suffix is what the stand-in received."""
    [record] = [
        m
        for m in bot.graph.state.sent
        if who in (m["body"].get("to"), m["body"].get("recipient")) and m["body"]["type"] == "template"
    ]
    index = load_buttons("promo_offer").opt_out_link
    [button] = [c for c in record["body"]["template"]["components"] if c.get("sub_type") == "url"]
    assert button["index"] == str(index)
    [parameter] = button["parameters"]
    definition = json.loads((TEMPLATES_DIR / "promo_offer.json").read_text(encoding="utf-8"))
    [buttons] = [c["buttons"] for c in definition["components"] if c["type"] == "BUTTONS"]
    published = buttons[index]["url"].replace(LINK_PLACEHOLDER, parameter["text"])
    local = urlsplit(published)._replace(scheme="http", netloc=f"127.0.0.1:{bot.rasa_port}")
    return urlunsplit(local), record["id"]


def fetch(url: str, method: str = "GET", **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def profile(bot: RunningBot, who: str) -> dict[str, Any]:
    shown = bot.cli("customers", "show", who)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def opt_outs(bot: RunningBot, who: str) -> list[dict[str, Any]]:
    return [t for t in profile(bot, who)["tags"] if t["name"] == "OPT_OUT"]


def test_the_link_in_the_template_works_in_a_phone_browser(playwright, bot, tmp_path):
    audience = tmp_path / "audience.csv"
    audience.write_text(
        "wa_id,user_id,name,tags\n"
        f"{PHONE},,Pia,{TAG_EN}\n"
        f",{BSUID_ONLY},Cleo,{TAG_EN}\n"
        f"{KEEPS},,Kai,{TAG_EN}\n"
        f"{SPANISH},,Sol,{TAG_ES}\n"
    )
    imported = bot.cli("customers", "import", str(audience))
    assert imported.returncode == 0, imported.stderr
    broadcast(bot, TAG_EN, "en_US", "link-en")
    broadcast(bot, TAG_ES, "es", "link-es")
    links = {who: link_sent_to(bot, who) for who in (PHONE, BSUID_ONLY, KEEPS, SPANISH)}

    # Link previews fetch the page: they see the question, and nobody is opted out by them.
    url, _ = links[PHONE]
    for agent in PREVIEW_AGENTS:
        status, body = fetch(url, **{"User-Agent": agent})
        assert status == 200 and "Stop marketing messages" in body
    assert fetch(url, "HEAD", **{"User-Agent": PREVIEW_AGENTS[0]}) == (200, "")
    assert opt_outs(bot, PHONE) == [] and profile(bot, PHONE)["consent_history"] == []

    for old in SCREENSHOTS.glob("opt-out-link-*.png"):
        old.unlink()
    result = subprocess.run(
        ["node", "opt_out_link.mjs"],
        cwd=playwright,
        env={
            **os.environ,
            "BUSINESS": business_name(),
            "LINK_PHONE": links[PHONE][0],
            "LINK_BSUID": links[BSUID_ONLY][0],
            "LINK_KEEP": links[KEEPS][0],
            "LINK_SPANISH": links[SPANISH][0],
            "SCREENSHOTS": str(SCREENSHOTS),
            "CHROMIUM": CHROMIUM,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    # What each customer chose is what the store holds: OPT_OUT from the link, naming the broadcast,
    # the template and the template message that carried the link; once, though opened twice.
    for who, broadcast_id in ((PHONE, "link-en"), (BSUID_ONLY, "link-en"), (SPANISH, "link-es")):
        [tag] = opt_outs(bot, who)
        assert (tag["source"], tag["message_id"]) == ("link", links[who][1]), who
        [event] = profile(bot, who)["consent_history"]
        assert (event["kind"], event["source"]) == ("opt_out", "link"), who
        assert profile(bot, who)["marketing_allowed"] is False, who
        assert json.loads(event["detail"]) == {"broadcast": broadcast_id, "template": "promo_offer"}
    assert opt_outs(bot, KEEPS) == [] and profile(bot, KEEPS)["consent_history"] == []
    # The BSUID-only customer still has no number: the link named them by their row, not a phone.
    assert [i["kind"] for i in profile(bot, BSUID_ONLY)["identities"]] == ["bsuid"]
    shots = {path.name for path in SCREENSHOTS.glob("opt-out-link-*.png")}
    assert {
        "opt-out-link-question.png",
        "opt-out-link-done.png",
        "opt-out-link-already.png",
        "opt-out-link-bsuid-done.png",
        "opt-out-link-kept.png",
        "opt-out-link-es-question.png",
        "opt-out-link-es-done.png",
        "opt-out-link-invalid.png",
    } <= shots
