"""The identifiers WhatsApp gives a customer, as typed values: pure parsing, no database.

- `phone`: E.164 digits (what Meta sends as `wa_id`, `from`, `recipient_id`), 7-15 digits;
- `bsuid`: a business-scoped user id, `CC.` + 1-128 letters/digits (`US.13491208655302741918`);
- `parent_bsuid`: the same with `ENT.` after the country code (`US.ENT.11815799212886844830`).

BSUIDs are kept exactly as received and compared byte for byte (whether Meta treats them as case
sensitive is undocumented); a lower-case country code is refused, as Meta never sends one. The
customer key (`customers.key`, Rasa's sender id) is ours, not WhatsApp's: see `new_customer_key`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

from bot.store.phone_numbers import is_wa_id, normalise_wa_id

PHONE = "phone"
BSUID = "bsuid"
PARENT_BSUID = "parent_bsuid"
Kind = Literal["phone", "bsuid", "parent_bsuid"]
KINDS: tuple[Kind, ...] = (PHONE, BSUID, PARENT_BSUID)

_BSUID = re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}")
_PARENT_BSUID = re.compile(r"[A-Z]{2}\.ENT\.[A-Za-z0-9]{1,128}")
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
KEY_PREFIX = "c_"
_NEW_KEY = re.compile(r"c_[a-z2-7]{20}")


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    kind: Kind
    value: str

    def __post_init__(self) -> None:
        if not valid(self.kind, self.value):
            raise ValueError(f"not a valid {self.kind}")


def valid(kind: str, value: str) -> bool:
    """Pure: is `value` exactly what WhatsApp sends for an identifier of this kind?"""
    if kind == PHONE:
        return is_wa_id(value)
    if kind == BSUID:
        return bool(_BSUID.fullmatch(value)) and not _PARENT_BSUID.fullmatch(value)
    if kind == PARENT_BSUID:
        return bool(_PARENT_BSUID.fullmatch(value))
    return False


def from_webhook(kind: Kind, raw: object) -> Identifier | None:
    """A field of a webhook as an identifier, or None when it is absent, empty or malformed
    (pywa's `"<WHATSAPP_USER_PHONE_NUMBER>"` placeholder, a 16-digit number, a 129-character BSUID)."""
    if isinstance(raw, str) and valid(kind, raw):
        return Identifier(kind, raw)
    return None


def parse_human(raw: str) -> Identifier:
    """What a person typed or a CSV holds: a phone number in any formatting, a BSUID or a parent
    BSUID (exact). ValueError for anything else."""
    text = raw.strip()
    if _PARENT_BSUID.fullmatch(text):
        return Identifier(PARENT_BSUID, text)
    if _BSUID.fullmatch(text):
        return Identifier(BSUID, text)
    return Identifier(PHONE, normalise_wa_id(text))


def new_customer_key() -> str:
    """`c_` + 20 random base32 characters (100 bits): never a phone number, never a BSUID."""
    return KEY_PREFIX + "".join(secrets.choice(_BASE32) for _ in range(20))


def looks_like_new_key(value: str) -> bool:
    return bool(_NEW_KEY.fullmatch(value))
