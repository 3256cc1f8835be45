"""`python -m bot run`: action server, Rasa server with the WhatsApp channel and dashboard (`make run`).

Without any WhatsApp credential the bot is wired to the simulator: local secrets from var/, the
replies to a local Graph API stand-in, and the simulator's address printed, ready to try.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from bot import PROJECT_ROOT, VAR_DIR
from bot.dashboard.local_whatsapp import LocalCredentials, wants_simulator
from bot.processes import LOOPBACK, Ports, bind_host, commands, secrets_environment, supervise
from bot.settings import child_environment
from bot.whatsapp.config import WhatsAppConfig

CHANNEL = "bot.whatsapp.channel.WhatsAppInput"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="start the action server, the Rasa server and the dashboard (ports from RASA_PORT, "
        "ACTIONS_PORT, DASHBOARD_PORT; address from BOT_BIND_HOST, default 127.0.0.1); without "
        "WhatsApp credentials, the simulator too",
    )
    parser.add_argument("--model", default="models", help="model file or folder (default: models)")
    parser.set_defaults(handler=_run)


def channel_credentials(path: Path = PROJECT_ROOT / "credentials.yml") -> dict[str, Any]:
    """The WhatsApp channel's section of credentials.yml (the environment wins over it)."""
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(CHANNEL) or {}


def _run(args: argparse.Namespace) -> int:
    ports = Ports.from_env()
    host = bind_host()
    # The tokens reach the servers by environment: a command line is visible to every local user.
    tokens = secrets_environment()
    token = tokens["RASA_AUTH_TOKEN"]
    env = child_environment({**tokens, "ACTIONS_PORT": str(ports.actions), "RASA_PORT": str(ports.rasa)})
    config = WhatsAppConfig.load(channel_credentials(), env)
    local = None
    if wants_simulator(config):
        local = LocalCredentials.load_or_create(VAR_DIR / "simulator_credentials.json")
        env.update(local.environment(ports.stand_in_url))
        config = WhatsAppConfig.load(channel_credentials(), env)
    dashboard = f"http://127.0.0.1:{ports.dashboard}"
    print(
        f"Rasa HTTP API:     http://127.0.0.1:{ports.rasa}  (token: RASA_AUTH_TOKEN or {VAR_DIR}/rasa_auth_token)"
    )
    print(f"WhatsApp webhook:  http://127.0.0.1:{ports.rasa}/webhooks/whatsapp/webhook")
    print(f"Action server:     http://127.0.0.1:{ports.actions}/health")
    if local is not None:
        # Local development only: the link logs the browser in (the token is in var/ anyway).
        print(f"Dashboard:         {dashboard}/customers?token={token}")
        print(f"Simulator:         {dashboard}/simulator?token={token}")
        print(
            "NOTE: no WhatsApp credentials, so the bot is wired to the simulator: replies go to a local "
            f"Graph API stand-in ({ports.stand_in_url}), never to a phone. Open the simulator once "
            "Rasa says it is up, write STOP and tap the confirmation. Set WHATSAPP_APP_SECRET, "
            "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID (docs/operators.md) to connect a real number."
        )
    else:
        # A real token is not printed: it may be production's, and consoles end up in logs.
        print(f"Dashboard:         {dashboard}  (log in with the token above)")
    if host != LOOPBACK:
        print(f"NOTE: BOT_BIND_HOST={host}: Rasa and the action server listen beyond this machine")
    for warning in config.warnings():
        print(f"NOTE: {warning}")
    return supervise(commands(ports, args.model, simulator=local is not None, host=host), env)
