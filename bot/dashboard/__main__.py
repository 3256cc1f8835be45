"""`python -m bot.dashboard`: the dashboard (and, given a stand-in, the simulator) on 127.0.0.1.

`python -m bot run` starts it; the admin token is RASA_AUTH_TOKEN or var/rasa_auth_token.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from aiohttp import web

from bot.dashboard.app import DashboardConfig, build_app
from bot.dashboard.simulator import SimulatorUnavailable, settings_from_env
from bot.processes import auth_token
from bot.publish.model_files import PUBLISHED_DIR, models_dir
from bot.publish.records import LOG_NAME
from bot.settings import from_env

# Loopback only: the dashboard shows personal data and the simulator signs webhooks. To reach it
# from elsewhere, put an HTTPS reverse proxy (or an SSH tunnel) in front of it.
HOST = "127.0.0.1"


def main(argv: list[str] | None = None) -> None:
    settings = from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=settings.dashboard_port)
    parser.add_argument("--rasa-port", type=int, default=settings.rasa_port)
    parser.add_argument(
        "--simulator",
        metavar="STAND_IN_URL",
        help="turn the simulator on; the bot must send to this local Graph API stand-in (WHATSAPP_API_URL)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rasa_url = f"http://127.0.0.1:{args.rasa_port}"
    config = DashboardConfig(
        token=auth_token(),
        rasa_url=rasa_url,
        trust_proxy=settings.dashboard_trust_proxy,
        secure_cookie=settings.dashboard_secure_cookie,
        publications=models_dir(settings) / PUBLISHED_DIR / LOG_NAME,
    )
    if args.simulator:
        try:
            simulator = settings_from_env(None, args.simulator, rasa_url)
            config = dataclasses.replace(config, simulator=simulator)
        except SimulatorUnavailable as reason:
            logging.getLogger(__name__).warning("simulator off: %s", reason)
            config = dataclasses.replace(config, simulator_off_reason=str(reason))
    web.run_app(build_app(config), host=HOST, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
