"""The simulator and the dashboard in a real browser, against the real bot.

Starts the action server, the Rasa server and a Graph API stand-in (tests/rasa_servers.py), the
dashboard with the simulator on, then runs tests/browser/opt_out_flow.mjs (phone customers, and a
username customer whose number is hidden): Debian's chromium driven
by playwright-core (npm). Screenshots go to results/screenshots/. `.ci/run` installs chromium and
Node.js; without them this test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import PROJECT_ROOT
from tests.browser_tools import CHROMIUM, SCREENSHOTS, playwright_dir
from tests.rasa_servers import AUTH_TOKEN, RunningBot, _wait_for, free_port, module_bot

pytestmark = pytest.mark.rasa

CUSTOMER_A = "4915200000101"
CUSTOMER_B = "4915200000102"
# A username customer whose number WhatsApp hides: known by a BSUID only.
BSUID_C = "DE.4915200000103"
USERNAME_C = "cleo.example"
# Customers choose their own WhatsApp name: this one must show as text and run nothing.
NAME_A = 'Zoë <img src=x onerror=alert(1)> "Q"'


@pytest.fixture(scope="module")
def playwright() -> Path:
    return playwright_dir()


bot = module_bot("browser")


@pytest.fixture(scope="module")
def dashboard(bot: RunningBot) -> Iterator[str]:
    """The dashboard with the simulator on, wired like `make run` wires it (to the bot's stand-in)."""
    port = free_port()
    log = bot.workdir / "dashboard.log"
    argv = [sys.executable, "-m", "bot.dashboard", "--port", str(port), "--rasa-port", str(bot.rasa_port)]
    process = subprocess.Popen(
        [*argv, "--simulator", f"http://127.0.0.1:{bot.graph.port}"],
        cwd=PROJECT_ROOT,
        env={**bot.env, "RASA_AUTH_TOKEN": AUTH_TOKEN},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", process, log, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def opt_out_tag(bot: RunningBot, wa_id: str) -> dict | None:
    shown = bot.cli("customers", "show", wa_id)
    assert shown.returncode == 0, shown.stderr
    return next((t for t in json.loads(shown.stdout)["tags"] if t["name"] == "OPT_OUT"), None)


def test_stop_in_the_simulator_shows_opt_out_in_the_dashboard(playwright, bot, dashboard):
    # Only this test's own: the opt-out link's browser test saves its screenshots there too.
    for old in [*SCREENSHOTS.glob("simulator-*.png"), *SCREENSHOTS.glob("dashboard-*.png")]:
        old.unlink()
    result = subprocess.run(
        ["node", "opt_out_flow.mjs"],
        cwd=playwright,
        env={
            **os.environ,
            "DASHBOARD_URL": dashboard,
            "ADMIN_TOKEN": AUTH_TOKEN,
            "CUSTOMER_A": CUSTOMER_A,
            "CUSTOMER_B": CUSTOMER_B,
            "CUSTOMER_A_NAME": NAME_A,
            "CUSTOMER_C_BSUID": BSUID_C,
            "CUSTOMER_C_USERNAME": USERNAME_C,
            "SCREENSHOTS": str(SCREENSHOTS),
            "CHROMIUM": CHROMIUM,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"{result.stdout}\n{result.stderr}\n{(bot.workdir / 'dashboard.log').read_text()}"
    )

    # What the browser saw is what the store holds: real webhooks went through the real bot.
    assert opt_out_tag(bot, CUSTOMER_A)["source"] == "text"
    assert opt_out_tag(bot, CUSTOMER_B)["source"] == "template"
    assert opt_out_tag(bot, BSUID_C)["source"] == "text"
    sent = [record["body"] for record in bot.graph.state.sent]
    # The promo for A was refused before anything was sent: B got one template, A none.
    assert [m.get("to") for m in sent if m["type"] == "template"] == [CUSTOMER_B]
    # C's number was never known: every answer to C went to the BSUID with `recipient`.
    to_c = [m for m in sent if m.get("recipient") == BSUID_C]
    assert to_c and all("to" not in m for m in to_c)
    shots = {path.name for path in SCREENSHOTS.glob("*.png")}
    assert {
        "simulator-confirmation.png",
        "simulator-username-customer.png",
        "dashboard-profile.png",
        "dashboard-username-profile.png",
        "dashboard-opt-outs.png",
    } <= shots
