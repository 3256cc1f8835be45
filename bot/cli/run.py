"""`python -m bot run`: the action server and the Rasa server with the WhatsApp channel (`make run`)."""

from __future__ import annotations

import argparse
import os

from bot import VAR_DIR
from bot.processes import Ports, auth_token, commands, supervise
from bot.whatsapp.config import WhatsAppConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="start the action server and the Rasa server (ports from RASA_PORT, ACTIONS_PORT)",
    )
    parser.add_argument("--model", default="models", help="model file or folder (default: models)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    ports = Ports.from_env()
    token = auth_token()
    env = {**os.environ, "ACTIONS_PORT": str(ports.actions), "RASA_PORT": str(ports.rasa)}
    config = WhatsAppConfig.load({})
    print(
        f"Rasa HTTP API:     http://127.0.0.1:{ports.rasa}  (token: RASA_AUTH_TOKEN or {VAR_DIR}/rasa_auth_token)"
    )
    print(f"WhatsApp webhook:  http://127.0.0.1:{ports.rasa}/webhooks/whatsapp/webhook")
    print(f"Action server:     http://127.0.0.1:{ports.actions}/health")
    for warning in config.warnings():
        print(f"NOTE: {warning}")
    return supervise(commands(ports, token, args.model), env)
