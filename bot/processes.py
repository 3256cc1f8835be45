"""Start the bot's processes together, and stop them together.

`make run` ends here: the action server, the Rasa server and the dashboard (`bot.dashboard`), plus,
without WhatsApp credentials, the local Graph API stand-in that the simulator reads. All children
share our terminal (logs go to the console); Ctrl-C or SIGTERM stops them all cleanly, and if one
dies the others are stopped too, so that a half-running bot never sits there looking healthy.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bot import PROJECT_ROOT, VAR_DIR
from bot.private_files import private_dir

STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Ports:
    rasa: int
    actions: int
    dashboard: int = 5080
    stand_in: int = 5081  # the local Graph API stand-in (simulator only)

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ = os.environ) -> Ports:
        return cls(
            rasa=int(environ.get("RASA_PORT", "5005")),
            actions=int(environ.get("ACTIONS_PORT", "5055")),
            dashboard=int(environ.get("DASHBOARD_PORT", "5080")),
            stand_in=int(environ.get("SIMULATOR_GRAPH_PORT", "5081")),
        )

    @property
    def stand_in_url(self) -> str:
        return f"http://127.0.0.1:{self.stand_in}"


def auth_token(
    environ: dict[str, str] | os._Environ = os.environ, token_file: Path = VAR_DIR / "rasa_auth_token"
) -> str:
    """RASA_AUTH_TOKEN, or a random token kept in var/ so that the HTTP API is never left open."""
    if environ.get("RASA_AUTH_TOKEN"):
        return environ["RASA_AUTH_TOKEN"]
    stored = token_file.read_text().strip() if token_file.exists() else ""
    if stored:  # an empty file must never become an empty (open) token
        return stored
    private_dir(token_file.parent)
    token = secrets.token_urlsafe(32)
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    return token


def rasa_bin() -> str:
    return str(Path(sys.executable).with_name("rasa"))


def commands(
    ports: Ports, token: str, model: str = "models", stand_in_token: str | None = None
) -> list[list[str]]:
    """The processes to start. With `stand_in_token` (the generated access token) the bot is wired
    to the simulator: the Graph API stand-in runs too and the dashboard turns the simulator on."""
    rasa = rasa_bin()
    dashboard = [
        sys.executable, "-m", "bot.dashboard",
        "--port", str(ports.dashboard), "--rasa-port", str(ports.rasa),
    ]  # fmt: skip
    local = []
    if stand_in_token is not None:
        dashboard += ["--simulator", ports.stand_in_url]
        local = [
            [
                sys.executable, "-m", "bot.fake_graph_api",
                "--port", str(ports.stand_in), "--token", stand_in_token,
            ]
        ]  # fmt: skip
    return [
        [rasa, "run", "actions", "--actions", "actions", "--port", str(ports.actions)],
        [
            rasa, "run",
            "--enable-api", "--auth-token", token,
            "--port", str(ports.rasa),
            "--credentials", "credentials.yml",
            "--endpoints", "endpoints.yml",
            "--model", model,
        ],
        dashboard,
        *local,
    ]  # fmt: skip


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
