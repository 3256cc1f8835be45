"""The bot's settings from the environment: one typed, frozen object, parsed and checked in one place.

`from_env()` reads every variable the bot knows (README.md, "Environment variables") and refuses a
bad value with the variable's name (`SettingsError`), so that a typo stops a process at start
instead of surfacing in the middle of a conversation. It reads the environment each time it is
called: the processes call it when they start, tests change the environment between calls, and
parsing twenty-five strings (~70 µs) costs nothing next to what they then do. The one variable
read on every transaction, DATABASE_URL, has a reader of its own (`database_url()`, ~1 µs).

No other module of bot/ or actions/ reads os.environ (tests/test_settings.py checks it); the ones
that build a child process's environment, or set a variable for a library that reads only the
environment (Sanic), still write it.

An empty value counts as unset, as it always has: `FOO= make run` is `FOO` left at its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

TRUE = frozenset({"1", "true", "yes"})
FALSE = frozenset({"0", "false", "no"})
OPT_OUT_MODES = ("confirm", "immediate")
MAX_LINK_TTL_DAYS = 366

D = TypeVar("D", int, None)  # a whole number's default: a number, or None for "unset"


class SettingsError(ValueError):
    """A variable's value the bot cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    # The customer store and the conversations (SQLAlchemy URLs); "": the SQLite files in var/.
    database_url: str = ""  # DATABASE_URL
    tracker_store_url: str = ""  # TRACKER_STORE_URL
    redis_url: str = ""  # REDIS_URL: Rasa's lock store; "": in process memory
    sanic_workers: int = 1  # SANIC_WORKERS
    sanic_request_max_size: int | None = None  # SANIC_REQUEST_MAX_SIZE; None: bot.limits decides
    # Processes and ports (bot/processes.py)
    rasa_port: int = 5005  # RASA_PORT
    actions_port: int = 5055  # ACTIONS_PORT
    dashboard_port: int = 5080  # DASHBOARD_PORT
    simulator_graph_port: int = 5081  # SIMULATOR_GRAPH_PORT
    bind_host: str = "127.0.0.1"  # BOT_BIND_HOST
    # Secrets; "": generated once and kept in var/ (bot/processes.py)
    rasa_auth_token: str = ""  # RASA_AUTH_TOKEN
    action_server_token: str = ""  # ACTION_SERVER_TOKEN
    opt_out_link_secret: str = ""  # OPT_OUT_LINK_SECRET
    suppression_secret: str = ""  # SUPPRESSION_SECRET
    # The opt-out link and the opt-out itself
    public_url: str = ""  # BOT_PUBLIC_URL, checked by bot.opt_out_link.settings.public_url
    opt_out_link_ttl_days: int = 30  # OPT_OUT_LINK_TTL_DAYS, 1 to 366
    opt_out_mode: str = "confirm"  # OPT_OUT_MODE: "confirm" or "immediate"
    # The dashboard
    dashboard_trust_proxy: bool = False  # DASHBOARD_TRUST_PROXY
    dashboard_secure_cookie: bool = False  # DASHBOARD_SECURE_COOKIE
    # Publishing (bot.publish) and the marketing playbooks' switches; "": models/ and playbooks.yml
    models_dir: str = ""  # MODELS_DIR
    playbooks_file: str = ""  # PLAYBOOKS_FILE
    # The WhatsApp channel; "" (or None): credentials.yml's value, else the channel's default
    whatsapp_verify_token: str = ""  # WHATSAPP_VERIFY_TOKEN
    whatsapp_app_secret: str = ""  # WHATSAPP_APP_SECRET
    whatsapp_access_token: str = ""  # WHATSAPP_ACCESS_TOKEN
    whatsapp_phone_number_id: str = ""  # WHATSAPP_PHONE_NUMBER_ID
    whatsapp_api_url: str = ""  # WHATSAPP_API_URL
    whatsapp_allow_unsigned: bool | None = None  # WHATSAPP_ALLOW_UNSIGNED


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in `environ` (None: this process's environment); SettingsError for a bad value."""
    environ = os.environ if environ is None else environ
    return Settings(
        database_url=_text(environ, "DATABASE_URL"),
        tracker_store_url=_text(environ, "TRACKER_STORE_URL"),
        redis_url=_text(environ, "REDIS_URL"),
        sanic_workers=_whole(environ, "SANIC_WORKERS", 1, low=1),
        sanic_request_max_size=_whole(environ, "SANIC_REQUEST_MAX_SIZE", None, low=1),
        rasa_port=_port(environ, "RASA_PORT", 5005),
        actions_port=_port(environ, "ACTIONS_PORT", 5055),
        dashboard_port=_port(environ, "DASHBOARD_PORT", 5080),
        simulator_graph_port=_port(environ, "SIMULATOR_GRAPH_PORT", 5081),
        bind_host=_text(environ, "BOT_BIND_HOST", "127.0.0.1"),
        rasa_auth_token=_text(environ, "RASA_AUTH_TOKEN"),
        action_server_token=_text(environ, "ACTION_SERVER_TOKEN"),
        opt_out_link_secret=_text(environ, "OPT_OUT_LINK_SECRET"),
        suppression_secret=_text(environ, "SUPPRESSION_SECRET"),
        public_url=_text(environ, "BOT_PUBLIC_URL"),
        opt_out_link_ttl_days=_whole(
            environ, "OPT_OUT_LINK_TTL_DAYS", 30, low=1, high=MAX_LINK_TTL_DAYS, what="a whole number of days"
        ),
        opt_out_mode=_opt_out_mode(environ),
        dashboard_trust_proxy=_flag(environ, "DASHBOARD_TRUST_PROXY") or False,
        dashboard_secure_cookie=_flag(environ, "DASHBOARD_SECURE_COOKIE") or False,
        models_dir=_text(environ, "MODELS_DIR"),
        playbooks_file=_text(environ, "PLAYBOOKS_FILE"),
        whatsapp_verify_token=_text(environ, "WHATSAPP_VERIFY_TOKEN"),
        whatsapp_app_secret=_text(environ, "WHATSAPP_APP_SECRET"),
        whatsapp_access_token=_text(environ, "WHATSAPP_ACCESS_TOKEN"),
        whatsapp_phone_number_id=_text(environ, "WHATSAPP_PHONE_NUMBER_ID"),
        whatsapp_api_url=_text(environ, "WHATSAPP_API_URL"),
        whatsapp_allow_unsigned=_flag(environ, "WHATSAPP_ALLOW_UNSIGNED"),
    )


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """DATABASE_URL alone, as `from_env().database_url` has it: `bot.db` asks on every transaction,
    and reads it every time because tests point it at a fresh database for each test."""
    return _text(os.environ if environ is None else environ, "DATABASE_URL")


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with `overrides`: what a child process (the servers started by
    `python -m bot run`) is given, so that it reads the same settings."""
    return {**os.environ, **overrides}


def _text(environ: Mapping[str, str], name: str, default: str = "") -> str:
    return environ.get(name) or default


def _whole(
    environ: Mapping[str, str],
    name: str,
    default: D,
    low: int,
    high: int | None = None,
    what: str = "a whole number",
) -> int | D:
    """A whole number from `low` to `high` (no bound: None); unset or empty: `default`."""
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bounds = f"at least {low}" if high is None else f"{low} to {high}"
        raise SettingsError(f"{name} must be {what}, {bounds}; not {raw!r}")
    return int(raw)


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    return _whole(environ, name, default, low=1, high=65535, what="a port number")


def _flag(environ: Mapping[str, str], name: str) -> bool | None:
    """True for 1/true/yes, False for 0/false/no (any case), None when unset."""
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise SettingsError(f"{name} must be 1, true or yes (or 0, false, no); not {raw!r}")


def _opt_out_mode(environ: Mapping[str, str]) -> str:
    mode = (environ.get("OPT_OUT_MODE") or OPT_OUT_MODES[0]).strip().lower()
    if mode not in OPT_OUT_MODES:
        raise SettingsError(
            f"OPT_OUT_MODE must be {OPT_OUT_MODES[0]!r} or {OPT_OUT_MODES[1]!r}, not {mode!r}"
        )
    return mode
