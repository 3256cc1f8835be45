"""OPT_OUT_MODE: confirm a stop request before tagging (`confirm`, the default) or honour it at once.

Some jurisdictions forbid asking twice: in the US a reply of STOP must be honoured at once, with at
most one message after it (FCC order 24-24). With `immediate`, an unambiguous keyword
(actions/stop_keywords.yml, matched on the whole message) or a tap on a stop button writes the tag
without the question, and the bot says so once (utter_opted_out); free-text paraphrases are still
confirmed first. It is an environment variable, not a slot, because it is the deployment's legal
setting, not conversation design: changing it needs no retraining, and one model serves both.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.settings import from_env
from bot.stop_keywords import is_stop_keyword

CONFIRM = "confirm"
IMMEDIATE = "immediate"


def mode_from(environ: Mapping[str, str] | None = None) -> str:
    """The mode the environment sets (bot.settings refuses anything but CONFIRM and IMMEDIATE)."""
    return from_env(environ).opt_out_mode


# Read when the action server loads the actions, so a typo stops it from starting.
MODE = mode_from()


def opts_out_at_once(mode: str, typed: str | None) -> bool:
    """Pure: is this stop request honoured without the question? `typed` is the customer's text,
    None for a tap on a button (a template's "Stop promotions", the bot's own stop button)."""
    return mode == IMMEDIATE and (typed is None or is_stop_keyword(typed))
