"""Broadcasts and marketing playbooks end to end: `python -m bot broadcast` in a subprocess -> its
worker processes -> the fake Graph API, while the real bot (Rasa and action servers) answers the
customers; and a single send through Rasa's trigger_intent -> action_send_broadcast.

The tests share one bot; each works on its own customers, selected by a tag of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot import PROJECT_ROOT
from bot.fake_graph_api import ScriptedFailure
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import conversation
from tests.rasa_servers import AUTH_TOKEN, RunningBot, module_bot

pytestmark = pytest.mark.rasa


bot = module_bot("broadcast-e2e")


def import_customers(
    bot: RunningBot, tmp_path: Path, tag: str, first: int, count: int, opted_out=()
) -> list[str]:
    """`count` customers tagged `tag`, numbered from `first`; those at the `opted_out` positions
    are imported with an OPT_OUT tag."""
    numbers = [str(first + i) for i in range(count)]
    lines = ["wa_id,name,tags"] + [
        f"{n},Customer {i},{tag}{';OPT_OUT' if i in opted_out else ''}" for i, n in enumerate(numbers)
    ]
    path = tmp_path / f"{tag}.csv"
    path.write_text("\n".join(lines) + "\n")
    result = bot.cli("customers", "import", str(path))
    assert result.returncode == 0, result.stderr
    return numbers


def broadcast_args(tag: str, broadcast_id: str, *extra: str) -> list[str]:
    return [
        "broadcast", "--template", "promo_offer", "--language", "en_US", "--param", "20% off shoes",
        "--tag", tag, "--id", broadcast_id, *extra,
    ]  # fmt: skip


def templates_to(bot: RunningBot, numbers) -> list[dict]:
    wanted = set(numbers)
    return [
        m["body"]
        for m in bot.graph.state.sent
        if m["body"].get("to") in wanted and m["body"]["type"] == "template"
    ]


def stop_payload(body: dict) -> str:
    [button] = [c for c in body["template"]["components"] if c.get("sub_type") == "quick_reply"]
    return button["parameters"][0]["payload"]


def report(bot: RunningBot, broadcast_id: str) -> dict[str, str]:
    result = bot.cli("broadcast", "report", broadcast_id)
    assert result.returncode == 0, result.stderr
    lines = [line.split(":", 1) for line in result.stdout.splitlines()[1:]]
    return {key.strip(): value.strip() for key, value in lines}


def opt_out_tag(bot: RunningBot, wa_id: str) -> dict | None:
    shown = bot.cli("customers", "show", wa_id)
    profile = json.loads(shown.stdout)
    return next((t for t in profile["tags"] if t["name"] == "OPT_OUT"), None)


def rasa_api(bot: RunningBot, path: str, body: dict | None = None) -> dict:
    url = f"http://127.0.0.1:{bot.rasa_port}{path}?token={AUTH_TOKEN}&output_channel=whatsapp"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_a_broadcast_reaches_everyone_but_the_opted_out_and_only_once(bot, tmp_path):
    numbers = import_customers(bot, tmp_path, "E2E_ALL", 4917000001000, 30, opted_out={3, 14, 29})
    opted_out = {numbers[3], numbers[14], numbers[29]}

    result = bot.cli(*broadcast_args("E2E_ALL", "e2e-all"))
    assert result.returncode == 0, result.stderr
    assert "broadcast e2e-all: 27 to send, 3 left out as opted out" in result.stdout
    assert "27 sent, 0 skipped as opted out, 0 failed" in result.stdout
    assert "sent 27, skipped (opted out) 0, failed 0 | 27/27" in result.stderr  # the progress line

    sent = templates_to(bot, numbers)
    assert len(sent) == 27
    assert {body["to"] for body in sent} == set(numbers) - opted_out
    assert {stop_payload(body) for body in sent} == {"STOP_PROMOTIONS"}
    assert {body["biz_opaque_callback_data"] for body in sent} == {"e2e-all"}

    # Run it again: nothing more is sent.
    again = bot.cli(*broadcast_args("E2E_ALL", "e2e-all"))
    assert again.returncode == 0, again.stderr
    assert "0 sent" in again.stdout
    assert len(templates_to(bot, numbers)) == 27

    # A delivery status from WhatsApp shows in the report, through the message's wamid.
    wamid = next(m["id"] for m in bot.graph.state.sent if m["body"].get("to") == numbers[0])
    assert bot.post(meta.status(wamid, numbers[0], "delivered", callback_data="e2e-all")) == 200
    shown = report(bot, "e2e-all")
    assert (shown["sent"], shown["delivered"], shown["pending"]) == ("27", "1", "0")
    assert shown["skipped (opted out)"].startswith("3 (3 at selection")

    # A reply quoting the template tells the conversation which campaign it is about; a tap on
    # the template's quick reply (quoting it too) starts the opt-out confirmation.
    template_id = next(m["id"] for m in bot.graph.state.sent if m["body"].get("to") == numbers[1])
    assert bot.post(meta.text(numbers[1], "which shoes?", context_id=template_id)) == 200
    tracker = rasa_api(bot, f"/conversations/{conversation(bot, numbers[1])}/tracker")
    assert tracker["slots"]["broadcast_id"] == "e2e-all"
    assert tracker["latest_message"]["metadata"]["broadcast_id"] == "e2e-all"
    tap = meta.quick_reply(numbers[1], "STOP_PROMOTIONS", "Stop promotions", context_id=template_id)
    assert bot.post(tap) == 200
    confirmation = bot.sent_to(numbers[1])[-1]
    assert "stop receiving marketing messages" in confirmation["interactive"]["body"]["text"]
    other = rasa_api(bot, f"/conversations/{conversation(bot, numbers[2])}/tracker")
    assert other["slots"]["broadcast_id"] is None  # no reply, no campaign


def test_customers_who_opt_out_during_a_broadcast_get_nothing_after(bot, tmp_path):
    numbers = import_customers(bot, tmp_path, "E2E_LATE", 4917000002000, 12)
    by_preference, by_conversation = numbers[-1], numbers[-2]
    slow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            *broadcast_args("E2E_LATE", "e2e-late", "--rate", "1", "--concurrency", "1"),
        ],
        cwd=PROJECT_ROOT,
        env=bot.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(templates_to(bot, numbers)) < 2:
            assert time.monotonic() < deadline, "the broadcast did not start"
            time.sleep(0.1)
        # One stops promotions in WhatsApp itself, the other tells the bot and confirms.
        assert bot.post(meta.marketing_preference(by_preference, "stop")) == 200
        assert bot.post(meta.text(by_conversation, "stop")) == 200
        assert bot.post(meta.button_reply(by_conversation, "/affirm", "Yes, stop them")) == 200
        assert len(templates_to(bot, numbers)) < 10, "too late to test anything: the broadcast is too fast"
        out, err = slow.communicate(timeout=120)
    finally:
        slow.kill()
    assert slow.returncode == 0, err
    assert "10 sent, 2 skipped as opted out, 0 failed" in out
    assert {body["to"] for body in templates_to(bot, numbers)} == set(numbers[:-2])
    assert report(bot, "e2e-late")["skipped (opted out)"] == "2 (0 at selection, 2 at send time)"


def test_a_customer_confirming_an_opt_out_gets_no_broadcast(bot, tmp_path):
    deciding, other = import_customers(bot, tmp_path, "E2E_DECIDING", 4917000005000, 2)
    assert bot.post(meta.text(deciding, "stop")) == 200

    result = bot.cli(*broadcast_args("E2E_DECIDING", "e2e-deciding"))
    assert result.returncode == 0, result.stderr
    # Asked to stop and not confirmed: left out of the audience, like an opted-out customer.
    assert "1 to send, 1 left out as opted out" in result.stdout and "1 sent" in result.stdout
    assert templates_to(bot, [deciding]) == []

    # Their answer to the open question still counts.
    assert bot.post(meta.text(deciding, "yes")) == 200
    assert opt_out_tag(bot, deciding) is not None
    assert templates_to(bot, [deciding]) == [] and len(templates_to(bot, [other])) == 1


def test_broadcasts_during_the_confirmation_do_not_count_as_answers(bot, tmp_path):
    [deciding] = import_customers(bot, tmp_path, "E2E_TWICE", 4917000006000, 1)
    assert bot.post(meta.text(deciding, "stop")) == 200
    for broadcast_id in ("e2e-twice-1", "e2e-twice-2"):
        assert bot.cli(*broadcast_args("E2E_TWICE", broadcast_id)).returncode == 0
    assert bot.post(meta.text(deciding, "yes")) == 200
    assert opt_out_tag(bot, deciding) is not None
    assert templates_to(bot, [deciding]) == []


def test_a_131050_refusal_records_the_opt_out(bot, tmp_path):
    numbers = import_customers(bot, tmp_path, "E2E_131050", 4917000003000, 3)
    bot.graph.state.failures.append(ScriptedFailure(131050, 400, times=1, to=numbers[1]))
    result = bot.cli(*broadcast_args("E2E_131050", "e2e-131050"))
    assert result.returncode == 0, result.stderr
    assert "2 sent, 0 skipped as opted out, 1 failed" in result.stdout
    assert opt_out_tag(bot, numbers[1])["source"] == "meta_131050"
    assert report(bot, "e2e-131050")["failed"].endswith("by error code: 131050: 1")
    # Never tried again, and a later broadcast leaves the customer out.
    assert bot.cli(*broadcast_args("E2E_131050", "e2e-131050")).returncode == 0
    later = bot.cli(*broadcast_args("E2E_131050", "e2e-131050-b"))
    assert "2 to send, 1 left out as opted out" in later.stdout
    assert [body["to"] for body in templates_to(bot, [numbers[1]])] == []


def test_a_single_send_goes_through_the_customers_conversation(bot, tmp_path):
    one, other = import_customers(bot, tmp_path, "E2E_SINGLE", 4917000007000, 2)
    # Created without the Cloud API settings: the deliveries stay pending.
    env = {k: v for k, v in bot.env.items() if k != "WHATSAPP_ACCESS_TOKEN"}
    created = subprocess.run(
        [sys.executable, "-m", "bot", *broadcast_args("E2E_SINGLE", "e2e-single")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert created.returncode == 1 and "cannot send" in created.stderr
    trigger = {"name": "EXTERNAL_send_broadcast", "entities": {"broadcast_id": "e2e-single"}}
    answer = rasa_api(bot, f"/conversations/{conversation(bot, one)}/trigger_intent", trigger)
    assert answer["tracker"]["slots"]["last_broadcast"] == "promo_offer"
    assert len(templates_to(bot, [one])) == 1 and templates_to(bot, [other]) == []
    rasa_api(bot, f"/conversations/{conversation(bot, one)}/trigger_intent", trigger)
    assert len(templates_to(bot, [one])) == 1  # claimed once: never twice
    assert report(bot, "e2e-single")["pending"] == "1"


def test_the_abandoned_cart_playbook_never_reaches_an_opted_out_customer(bot, tmp_path):
    subscribed, opted_out = import_customers(bot, tmp_path, "E2E_CART", 4917000004000, 2, opted_out={1})
    trigger = {"name": "EXTERNAL_abandoned_cart", "entities": {"cart_items": "2 pairs of shoes"}}

    # Playbooks address the customer's conversation (bot.store.identities.conversation_id).
    rasa_api(bot, f"/conversations/{conversation(bot, subscribed)}/trigger_intent", trigger)
    [reminder] = bot.sent_to(subscribed)
    assert "2 pairs of shoes" in reminder["interactive"]["body"]["text"]
    assert reminder["interactive"]["action"]["buttons"][0]["reply"]["title"] == "Stop promotions"

    answer = rasa_api(bot, f"/conversations/{conversation(bot, opted_out)}/trigger_intent", trigger)
    assert bot.sent_to(opted_out) == []
    assert answer["tracker"]["slots"]["marketing_suppressed"] == "abandoned_cart: customer opted out"
