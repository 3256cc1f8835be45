"""`python -m bot.action_server [--interface HOST] ARGS`: `rasa run actions ARGS`, listening on HOST only.

rasa-sdk 3.6 has no option for its address: it listens where SANIC_HOST says, on every interface
when unset. This module takes `--interface` (`python -m bot run` passes BOT_BIND_HOST, 127.0.0.1 by
default) and otherwise runs the action server exactly as `rasa run actions` does, with rasa-sdk's
own arguments, and with the shared-secret check of `bot.action_auth` registered for certain.
"""

from __future__ import annotations

import argparse
import os

from rasa_sdk.__main__ import main_from_args
from rasa_sdk.endpoint import create_argument_parser
from rasa_sdk.plugin import plugin_manager

import rasa_sdk_plugins
from bot.processes import LOOPBACK


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = create_argument_parser()
    parser.add_argument("--interface", default=LOOPBACK, help=f"address to listen on (default {LOOPBACK})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["SANIC_HOST"] = args.interface
    # Discovery swallows import errors (rasa_sdk/plugin.py); registering here makes them fatal.
    rasa_sdk_plugins.init_hooks(plugin_manager())
    main_from_args(args)


if __name__ == "__main__":
    main()
