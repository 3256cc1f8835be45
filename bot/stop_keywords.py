"""The unambiguous stop keywords of actions/stop_keywords.yml, and whether a message is one.

Two places read the list: the NLU pipeline (nlu_components/stop_keyword.py), which makes every
keyword an opt-out request whatever the trained model says, and OPT_OUT_MODE=immediate
(actions/opt_out_mode.py), which honours a keyword without the confirmation question. Kept apart
from both so that neither the action server nor the Rasa server loads the other's code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from bot.whatsapp.rasa_input import normalise_label

# The designers' file lives with the actions it configures (docs/conversation-design.md).
KEYWORDS_FILE = Path(__file__).resolve().parents[1] / "actions" / "stop_keywords.yml"


def written_keywords() -> list[str]:
    """Every language's keywords as the file writes them, sorted, each once ("DAR DE BAJA")."""
    document = yaml.safe_load(KEYWORDS_FILE.read_text(encoding="utf-8")) or {}
    return sorted({str(word) for words in document.values() for word in words})


@cache
def stop_keywords() -> frozenset[str]:
    """Every language's keywords in one set (normalised: case, accents, punctuation, spaces)."""
    return frozenset(normalise_label(word) for word in written_keywords())


def is_stop_keyword(text: str) -> bool:
    """Pure (given the list): is the whole message one of the unambiguous keywords?"""
    return normalise_label(text) in stop_keywords()
