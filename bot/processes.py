"""Start the bot's processes together, and stop them together.

`make run` ends here: the action server, the Rasa server and the dashboard (`bot.dashboard`), plus,
without WhatsApp credentials, the local Graph API stand-in that the simulator reads. All children
share our terminal (logs go to the console); Ctrl-C or SIGTERM stops them all cleanly, and if one
dies the others are stopped too, so that a half-running bot never sits there looking healthy.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot import PROJECT_ROOT, VAR_DIR
from bot.private_files import private_dir
from bot.settings import from_env

STOP_TIMEOUT = 15.0
LOOPBACK = "127.0.0.1"
# The shared secret that Rasa sends the action server with every call (`bot.action_auth`).
ACTION_SERVER_TOKEN = "ACTION_SERVER_TOKEN"
OPT_OUT_LINK_SECRET = "OPT_OUT_LINK_SECRET"
# The key of the suppression list's hashes (bot/store/keyed_hash.py).
SUPPRESSION_SECRET = "SUPPRESSION_SECRET"


@dataclass(frozen=True)
class Ports:
    rasa: int
    actions: int
    dashboard: int = 5080
    stand_in: int = 5081  # the local Graph API stand-in (simulator only)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ports:
        settings = from_env(environ)
        return cls(
            rasa=settings.rasa_port,
            actions=settings.actions_port,
            dashboard=settings.dashboard_port,
            stand_in=settings.simulator_graph_port,
        )

    @property
    def stand_in_url(self) -> str:
        return f"http://127.0.0.1:{self.stand_in}"


def bind_host(environ: Mapping[str, str] | None = None) -> str:
    """Where the Rasa server and the action server listen: loopback unless BOT_BIND_HOST says
    otherwise (`0.0.0.0` in a container whose port is published). The dashboard and the stand-in
    stay on loopback whatever it says (`bot.dashboard`)."""
    return from_env(environ).bind_host or LOOPBACK


def _private_token(value: str, token_file: Path) -> str:
    """The variable's value, or a random token kept in var/, readable by its owner only."""
    if value:
        return value
    stored = token_file.read_text().strip() if token_file.exists() else ""
    if stored:  # an empty file must never become an empty (open) token
        return stored
    private_dir(token_file.parent)
    token = secrets.token_urlsafe(32)
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    return token


def auth_token(
    environ: Mapping[str, str] | None = None, token_file: Path = VAR_DIR / "rasa_auth_token"
) -> str:
    """RASA_AUTH_TOKEN, or a random token kept in var/ so that the HTTP API is never left open."""
    return _private_token(from_env(environ).rasa_auth_token, token_file)


def action_server_token(
    environ: Mapping[str, str] | None = None,
    token_file: Path = VAR_DIR / "action_server_token",
) -> str:
    """ACTION_SERVER_TOKEN, or a random one kept in var/: the secret Rasa sends the action server."""
    return _private_token(from_env(environ).action_server_token, token_file)


def opt_out_link_secret(
    environ: Mapping[str, str] | None = None,
    token_file: Path = VAR_DIR / "opt_out_link_secret",
) -> str:
    """OPT_OUT_LINK_SECRET, or a random one kept in var/: the key that signs opt-out links."""
    return _private_token(from_env(environ).opt_out_link_secret, token_file)


def suppression_secret(
    environ: Mapping[str, str] | None = None,
    token_file: Path = VAR_DIR / "suppression_secret",
) -> str:
    """SUPPRESSION_SECRET, or a random one kept in var/: the key of the suppression list's hashes."""
    return _private_token(from_env(environ).suppression_secret, token_file)


def secrets_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tokens the servers read from their environment, never from their command line: `ps`
    and /proc/<pid>/cmdline show a command line to every user of the machine."""
    return {
        "RASA_AUTH_TOKEN": auth_token(environ),
        ACTION_SERVER_TOKEN: action_server_token(environ),
        OPT_OUT_LINK_SECRET: opt_out_link_secret(environ),
        SUPPRESSION_SECRET: suppression_secret(environ),
    }


def actions_command(ports: Ports, host: str = LOOPBACK) -> list[str]:
    """`rasa run actions` through `bot.action_server`, which listens on `host` only."""
    return [
        sys.executable, "-m", "bot.action_server",
        "--actions", "actions", "--interface", host, "--port", str(ports.actions),
    ]  # fmt: skip


def rasa_command(
    ports: Ports, model: str = "models", host: str = LOOPBACK, credentials: str = "credentials.yml"
) -> list[str]:
    """`rasa run` through `bot.rasa_server`, which always turns the HTTP API on with RASA_AUTH_TOKEN."""
    return [
        sys.executable, "-m", "bot.rasa_server",
        "--interface", host, "--port", str(ports.rasa),
        "--credentials", credentials,
        "--endpoints", "endpoints.yml",
        "--model", model,
    ]  # fmt: skip


def commands(
    ports: Ports, model: str = "models", simulator: bool = False, host: str = LOOPBACK
) -> list[list[str]]:
    """The processes to start. With `simulator` the bot is wired to the simulator: the Graph API
    stand-in runs too (expecting WHATSAPP_ACCESS_TOKEN) and the dashboard turns the simulator on."""
    dashboard = [
        sys.executable, "-m", "bot.dashboard",
        "--port", str(ports.dashboard), "--rasa-port", str(ports.rasa),
    ]  # fmt: skip
    local = []
    if simulator:
        dashboard += ["--simulator", ports.stand_in_url]
        local = [[sys.executable, "-m", "bot.fake_graph_api", "--port", str(ports.stand_in)]]
    return [actions_command(ports, host), rasa_command(ports, model, host), dashboard, *local]


def supervise(argv_list: list[list[str]], env: dict[str, str]) -> int:
    children = [subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env) for argv in argv_list]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                print(
                    f"{child.args[1:3]} exited with {child.returncode}; stopping the others", file=sys.stderr
                )
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return exit_code
