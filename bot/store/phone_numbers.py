"""WhatsApp numbers in the one form the store keys customers by: `wa_id`, digits only.

One form matters for consent: an opt-out stored under "+1 650-555-1234" must stop a broadcast to
"16505551234", so every store function normalises the number it is given.
"""

from __future__ import annotations

import re

_FORMATTING = re.compile(r"[+\s\-()]")
# E.164: at most 15 digits, and country codes never start with 0, so a leading 0 means a national
# number ("06 12 34 56 78") that would never match the wa_id WhatsApp sends us.
_WA_ID = re.compile(r"[1-9][0-9]{7,14}")


def normalise_wa_id(raw: str) -> str:
    """'+1 (650) 555-1234' -> '16505551234'; ValueError unless 8-15 digits in international form."""
    digits = _FORMATTING.sub("", raw)
    if not _WA_ID.fullmatch(digits):
        raise ValueError("not a phone number in international form (8-15 digits, country code first)")
    return digits
