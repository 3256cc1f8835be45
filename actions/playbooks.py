"""Which marketing playbooks are switched on: playbooks.yml (PLAYBOOKS_FILE), the one place.

Only `MarketingAction` asks; nothing in the opt-out flow reads this file, so switching everything
off leaves opt-out working. The file may name playbooks only: a typo, or a try at switching off
something else (`opt_out: false`), is an error, and marketing fails closed (nothing is sent).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml

from bot import PROJECT_ROOT
from bot.settings import from_env

DEFAULT_FILE = PROJECT_ROOT / "playbooks.yml"


def playbooks_file() -> Path:
    return Path(from_env().playbooks_file or DEFAULT_FILE)


def parse_switches(text: str, known: Collection[str]) -> dict[str, bool]:
    """{playbook: on?} from the file's text; unknown names and non-boolean values are refused."""
    document = yaml.safe_load(text) or {}
    switches = document.get("playbooks") if isinstance(document, dict) else None
    if not isinstance(switches, dict):
        raise ValueError("expected a `playbooks:` mapping of playbook names to true / false")
    unknown = sorted(set(switches) - set(known))
    if unknown:
        raise ValueError(
            f"not marketing playbooks: {', '.join(map(str, unknown))} (playbooks: {sorted(known)})"
        )
    wrong = sorted(name for name, value in switches.items() if not isinstance(value, bool))
    if wrong:
        raise ValueError(f"switch must be true or false: {', '.join(wrong)}")
    return switches


def switched_on(playbook: str, known: Collection[str], path: Path | None = None) -> bool:
    """Read at every call: a small file, and a change must not wait for a restart. Unlisted: off."""
    text = (path or playbooks_file()).read_text(encoding="utf-8")
    return parse_switches(text, known).get(playbook, False)
