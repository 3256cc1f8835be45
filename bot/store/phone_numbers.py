"""WhatsApp numbers in the one form the store keeps them in: `wa_id`, digits only.

One form matters for consent: an opt-out stored under "+1 650-555-1234" must stop a broadcast to
"16505551234", so every store function normalises the number it is given.
"""

from __future__ import annotations

import re

_FORMATTING = re.compile(r"[+\s\-().]")
# E.164: at most 15 digits, and country codes never start with 0, so a leading 0 means a national
# number ("06 12 34 56 78") that would never match the wa_id WhatsApp sends us. At least 7: Niue
# (+683) has four-digit subscriber numbers.
_WA_ID = re.compile(r"[1-9][0-9]{6,14}")


def normalise_wa_id(raw: str) -> str:
    """'+1 (650) 555-1234' -> '16505551234'; ValueError unless 7-15 digits in international form."""
    digits = _FORMATTING.sub("", raw)
    if not _WA_ID.fullmatch(digits):
        raise ValueError("not a phone number in international form (7-15 digits, country code first)")
    return digits


def is_wa_id(value: str) -> bool:
    """Exactly as WhatsApp sends it: digits only, no formatting."""
    return bool(_WA_ID.fullmatch(value))
