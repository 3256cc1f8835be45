"""playbooks.yml: the one place marketing playbooks are switched on and off, and what it cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa_sdk.events import SlotSet

from actions import playbooks
from actions.marketing import playbook_names
from bot import PROJECT_ROOT
from bot.db import transaction
from bot.store.customers import ensure_customer
from tests.test_playbook_actions import SUBSCRIBED, remind


def test_the_shipped_file_switches_every_playbook_and_nothing_else():
    switches = playbooks.parse_switches((PROJECT_ROOT / "playbooks.yml").read_text(), playbook_names())
    assert set(switches) == playbook_names() == {"abandoned_cart"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("playbooks:\n  opt_out: false\n", "not marketing playbooks: opt_out"),
        ("playbooks:\n  abandoned_cart: 'off please'\n", "true or false"),
        ("abandoned_cart: false\n", "a `playbooks:` mapping"),
    ],
)
def test_only_playbooks_can_be_switched_and_only_with_true_or_false(text, error):
    with pytest.raises(ValueError, match=error):
        playbooks.parse_switches(text, {"abandoned_cart"})


def test_a_playbook_missing_from_the_file_is_off(tmp_path):
    path = tmp_path / "playbooks.yml"
    path.write_text("playbooks: {}\n")
    assert not playbooks.switched_on("abandoned_cart", {"abandoned_cart"}, path)


@pytest.fixture
def switches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Path:
    with transaction() as conn:
        ensure_customer(conn, SUBSCRIBED)
    path = tmp_path / "playbooks.yml"
    monkeypatch.setenv("PLAYBOOKS_FILE", str(path))
    return path


async def test_a_switched_off_playbook_sends_nothing_and_says_why(switches):
    switches.write_text("playbooks:\n  abandoned_cart: false\n")
    events, messages = await remind(SUBSCRIBED, cart_items="shoes")
    assert messages == []
    assert events == [SlotSet("marketing_suppressed", "abandoned_cart: switched off in playbooks.yml")]
    # Read at every run: switched on again, the next reminder goes out without a restart.
    switches.write_text("playbooks:\n  abandoned_cart: true\n")
    _, [message] = await remind(SUBSCRIBED, cart_items="shoes")
    assert message["response"] == "utter_abandoned_cart"


async def test_an_unreadable_file_sends_no_marketing(switches):
    switches.write_text("playbooks:\n  opt_out: false\n")
    events, messages = await remind(SUBSCRIBED)
    assert messages == []
    assert events == [SlotSet("marketing_suppressed", "abandoned_cart: playbook switches unreadable")]
