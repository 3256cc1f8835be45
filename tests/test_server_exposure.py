"""Who can reach the servers: only the customer, through the signed WhatsApp webhook, writes consent.

The bot is started the way `make run` starts it (`python -m bot run`, its own children and command
lines), on loopback with throwaway stores, and attacked from outside: Rasa's REST channel, a forged
action server call, the command lines and log output of every process, the listening addresses,
an oversized body.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot import PROJECT_ROOT
from bot.limits import REQUEST_MAX_SIZE
from bot.processes import LOOPBACK, Ports, bind_host, commands, secrets_environment
from bot.whatsapp import meta_payloads as meta
from tests.e2e_checks import CONFIRM_TITLE, new_customer, opt_out_count
from tests.rasa_servers import (
    ACCESS_TOKEN,
    ACTION_SERVER_TOKEN,
    APP_SECRET,
    AUTH_TOKEN,
    MODEL,
    RunningBot,
    _wait_for,
    free_port,
    new_bot,
    post_status,
)

SECRETS = (AUTH_TOKEN, ACTION_SERVER_TOKEN, APP_SECRET, ACCESS_TOKEN)
OVERSIZED = 5 * 1024 * 1024

# --- the runner's command lines and the configuration files (no servers) ---


def test_make_run_serves_the_whatsapp_channel_only():
    credentials = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text())
    assert list(credentials) == ["bot.whatsapp.channel.WhatsAppInput"]
    started = commands(Ports(rasa=5005, actions=5055))
    assert [argv[argv.index("--credentials") + 1] for argv in started if "--credentials" in argv] == [
        "credentials.yml"
    ]


def test_the_benchmarks_rest_channel_has_a_file_of_its_own_with_the_same_whatsapp_channel():
    bench = yaml.safe_load((PROJECT_ROOT / "bench" / "credentials_rest.yml").read_text())
    credentials = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text())
    assert set(bench) == {*credentials, "rest"}
    assert all(bench[channel] == credentials[channel] for channel in credentials)


def test_both_tokens_reach_the_servers_by_environment():
    # How each token is made: tests/test_security.py, test_each_token_is_the_environments_or_...
    given = {
        "RASA_AUTH_TOKEN": "a",
        "ACTION_SERVER_TOKEN": "b",
        "OPT_OUT_LINK_SECRET": "c",
        "SUPPRESSION_SECRET": "d",
    }
    assert secrets_environment(given) == given


def test_the_servers_listen_on_loopback_unless_bot_bind_host_says_otherwise():
    assert bind_host({}) == LOOPBACK
    assert bind_host({"BOT_BIND_HOST": ""}) == LOOPBACK
    for host in (LOOPBACK, "0.0.0.0"):
        actions, rasa, *_ = commands(Ports(rasa=5005, actions=5055), host=host)
        for argv in (actions, rasa):
            assert argv[argv.index("--interface") + 1] == host


# --- the bot as `make run` starts it ---


def descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the name (field 2) is in parentheses and may hold spaces: split after it
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (IPv4 and IPv6), from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1, as /proc writes them


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Iterator[RunningBot]:
    """`python -m bot run --model ...` with its output in runner.log; DEBUG, the most it ever logs."""
    workdir = tmp_path_factory.mktemp("exposure")
    bot = new_bot(
        workdir,
        DASHBOARD_PORT=str(free_port()),
        BOT_BIND_HOST="",  # the default, whatever the shell running the tests says
        LOG_LEVEL="DEBUG",
        LOG_LEVEL_LIBRARIES="DEBUG",  # Sanic's access log, with every URL it serves
    )
    log = workdir / "runner.log"
    bot.processes["runner"] = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--model", str(MODEL)],
        cwd=PROJECT_ROOT,
        env=bot.env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(f"http://127.0.0.1:{bot.actions_port}/health", bot.processes["runner"], log)
        _wait_for(f"http://127.0.0.1:{bot.rasa_port}/status?token={AUTH_TOKEN}", bot.processes["runner"], log)
        yield bot
    finally:
        bot.stop()


def post(url: str, payload: object, headers: dict[str, str] | None = None) -> int:
    return post_status(url, json.dumps(payload).encode(), headers)


def forged_opt_out(wa_id: str) -> dict[str, object]:
    """What Rasa would send to run `action_opt_out` for a customer who confirmed."""
    return {
        "next_action": "action_opt_out",
        "sender_id": wa_id,
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": wa_id,
            "slots": {"opt_out_decision": "confirmed"},
            "latest_message": {"text": "yes", "intent": {"name": "affirm"}, "metadata": {}},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": None,
        },
    }


@pytest.mark.rasa
def test_rasas_rest_channel_is_not_served(runner):
    wa_id = new_customer()
    url = f"http://127.0.0.1:{runner.rasa_port}/webhooks/rest/webhook"
    assert post(url, {"sender": wa_id, "message": "/opt_out"}) == 404
    assert post(url, {"sender": wa_id, "message": "/affirm"}) == 404
    assert opt_out_count(runner, wa_id) == (0, 0)


@pytest.mark.rasa
def test_a_forged_action_call_without_the_secret_writes_no_consent(runner):
    wa_id = new_customer()
    url = f"http://127.0.0.1:{runner.actions_port}/webhook"
    assert post(url, forged_opt_out(wa_id)) == 401
    assert post(url, forged_opt_out(wa_id), {"Authorization": "Bearer wrong-" + ACTION_SERVER_TOKEN}) == 403
    assert post(url, forged_opt_out(wa_id), {"Authorization": ACTION_SERVER_TOKEN}) == 403  # no scheme
    # the secret counts in the header only, never in the URL (which access logs keep)
    assert post(f"{url}?token={ACTION_SERVER_TOKEN}", forged_opt_out(wa_id)) == 401
    assert opt_out_count(runner, wa_id) == (0, 0)
    with urllib.request.urlopen(f"http://127.0.0.1:{runner.actions_port}/health", timeout=10) as response:
        assert response.status == 200  # for load balancers, without the secret


@pytest.mark.rasa
def test_an_action_call_with_the_secret_is_served(runner):
    wa_id = new_customer()
    headers = {"Authorization": f"Bearer {ACTION_SERVER_TOKEN}"}
    assert post(f"http://127.0.0.1:{runner.actions_port}/webhook", forged_opt_out(wa_id), headers) == 200
    assert opt_out_count(runner, wa_id) == (1, 1)


@pytest.mark.rasa
def test_rasa_calls_the_action_server_with_the_secret(runner):
    # A whole opt-out through the signed webhook: Rasa's calls to the action server get through.
    wa_id = new_customer()
    assert runner.post(meta.text(wa_id, "STOP")) == 200
    buttons = [b["reply"] for b in runner.sent_to(wa_id)[-1]["interactive"]["action"]["buttons"]]
    (yes,) = [button for button in buttons if button["title"] == CONFIRM_TITLE]
    assert runner.post(meta.button_reply(wa_id, yes["id"], yes["title"])) == 200
    assert opt_out_count(runner, wa_id) == (1, 1)


@pytest.mark.rasa
def test_no_secret_is_on_any_command_line(runner):
    processes = descendants(runner.processes["runner"].pid)
    assert len(processes) >= 3  # action server, Rasa, dashboard
    for pid in [runner.processes["runner"].pid, *processes]:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        for secret in SECRETS:
            assert not any(secret in arg for arg in argv), (pid, argv)


@pytest.mark.rasa
def test_the_servers_listen_on_loopback_only(runner):
    for port in (runner.rasa_port, runner.actions_port, int(runner.env["DASHBOARD_PORT"])):
        addresses = listening_addresses(port)
        assert addresses and addresses <= LOOPBACK_HEX, (port, addresses)


@pytest.mark.rasa
def test_no_secret_reaches_the_logs(runner):
    # Calls of every kind, a refused one included, and Rasa calling the action server.
    wa_id = new_customer()
    post(f"http://127.0.0.1:{runner.actions_port}/webhook", forged_opt_out(wa_id))
    assert runner.post(meta.text(wa_id, "STOP")) == 200
    time.sleep(1)  # let the servers write their logs
    output = (runner.workdir / "runner.log").read_text(errors="replace")
    assert "/webhook" in output  # Sanic's access log is on: the test would see a secret in a URL
    for secret in (ACTION_SERVER_TOKEN, APP_SECRET, ACCESS_TOKEN):
        assert secret not in output


def send_oversized(port: int, path: str, headers: str = "") -> bytes:
    """Announce a 5 MB body, send only 64 KB of it, and read what the server answers meanwhile."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {OVERSIZED}\r\n\r\n".encode()
            + b"x" * 65536
        )
        try:
            return connection.recv(4096)
        except TimeoutError:  # still waiting for the rest of the body: it would have buffered it all
            return b""


@pytest.mark.rasa
def test_an_oversized_body_is_refused_before_it_is_read(runner):
    assert OVERSIZED > REQUEST_MAX_SIZE
    authorized = f"Authorization: Bearer {ACTION_SERVER_TOKEN}\r\n"
    for port, path, headers in (
        (runner.rasa_port, "/webhooks/whatsapp/webhook", ""),
        (runner.actions_port, "/webhook", authorized),
    ):
        assert send_oversized(port, path, headers).startswith(b"HTTP/1.1 413"), (port, path)


# --- each server on its own ---


def test_the_graph_api_stand_in_takes_its_token_from_the_environment(tmp_path):
    port = free_port()
    env = {**os.environ, "WHATSAPP_ACCESS_TOKEN": "stand-in-secret"}
    log = tmp_path / "stand-in.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.fake_graph_api", "--port", str(port)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/_fake/sent", process, log, timeout=60)
        url = f"http://127.0.0.1:{port}/v21.0/{meta.PHONE_NUMBER_ID}/messages"
        body = {"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": "hi"}}
        assert post(url, body, {"Authorization": "Bearer stand-in-secret"}) == 200
        assert post(url, body, {"Authorization": "Bearer test-access-token"}) == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def start_actions(tmp_path: Path, argv: list[str], **env: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "actions.log"
    environ = {k: v for k, v in os.environ.items() if k != "ACTION_SERVER_TOKEN"}
    process = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env={**environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    return process, log


@pytest.mark.rasa
def test_the_action_server_does_not_start_without_its_secret(tmp_path):
    ports = Ports(rasa=free_port(), actions=free_port())
    process, log = start_actions(tmp_path, commands(ports)[0])
    assert process.wait(timeout=120) != 0
    assert "ACTION_SERVER_TOKEN is not set" in log.read_text()


@pytest.mark.rasa
def test_plain_rasa_run_actions_needs_the_secret_too(tmp_path):
    # An operator starting the action server the way Rasa documents it gets the check as well.
    port = free_port()
    rasa = str(Path(sys.executable).with_name("rasa"))
    process, log = start_actions(
        tmp_path,
        [rasa, "run", "actions", "--actions", "actions", "--port", str(port)],
        ACTION_SERVER_TOKEN="plain-secret",
        SANIC_HOST=LOOPBACK,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", process, log)
        assert post(f"http://127.0.0.1:{port}/webhook", forged_opt_out(new_customer())) == 401
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/actions", timeout=10)
        assert refused.value.code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
