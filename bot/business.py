"""The business as customers know it: its name, from the `business_name` slot in domain.yml.

One place, so the bot's replies (which use the slot), the dashboard and the opt-out link page
all name the business the same way; designers change it in domain.yml like any text.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bot import PROJECT_ROOT, yaml_files
from bot.contract import Slot

FALLBACK_NAME = "Your business"


def business_name(domain: Path = PROJECT_ROOT / "domain.yml") -> str:
    """The `business_name` slot's initial value; a neutral name if domain.yml does not say."""
    try:
        slots = (yaml_files.load(domain) or {}).get("slots", {})
        return str(slots[Slot.BUSINESS_NAME]["initial_value"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return FALLBACK_NAME
