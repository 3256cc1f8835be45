"""Signed, expiring opt-out link tokens: `<payload>.<mac>`, both unpadded base64url.

The payload is the JSON list `[1, customer_id, broadcast_id, expires_at]` (format version, the
customer's row id in our store, the broadcast's id, Unix seconds). The customer's *row id* and not
their key or phone number: customers known before BSUIDs have their old phone number as their key,
and a URL is copied into link previews, proxies and browser histories.

The MAC is HMAC-SHA256 over a purpose label and the payload, cut to 144 bits: a token cannot be
made or altered without the secret, nor guessed from another one, and the label keeps a MAC made
for another purpose with the same secret (the page's CSRF field) from passing as a token.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
from dataclasses import dataclass

VERSION = 1
MAX_TOKEN_LENGTH = 512  # a URL path segment; a real token is about a hundred characters
_MAC_BYTES = 18
_TOKEN_LABEL = b"opt-out-link/token/v1|"
_CSRF_LABEL = b"opt-out-link/csrf/v1|"


class TokenProblem(enum.Enum):
    MALFORMED = "malformed"  # not a token of ours at all (truncated, garbage, another format)
    FORGED = "forged"  # well-formed, but the MAC does not match: altered, or signed by another secret
    EXPIRED = "expired"


class BadToken(ValueError):
    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a valid token says: this customer may opt out through this broadcast's link."""

    customer_id: int
    broadcast_id: str
    expires_at: int


def issue(secret: bytes, claim: LinkClaim) -> str:
    payload = _b64(
        json.dumps(
            [VERSION, claim.customer_id, claim.broadcast_id, claim.expires_at], separators=(",", ":")
        ).encode()
    )
    return f"{payload}.{_b64(_mac(secret, _TOKEN_LABEL, payload))}"


def verify(secret: bytes, token: str, now: int) -> LinkClaim:
    """The claim of a genuine, unexpired token; BadToken otherwise. The MAC is checked first, so
    nothing of a forged payload is ever decoded."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise BadToken(TokenProblem.MALFORMED)
    payload, mac = token.split(".")
    try:
        given = _unb64(mac)
    except ValueError:
        raise BadToken(TokenProblem.MALFORMED) from None
    if len(given) != _MAC_BYTES:
        raise BadToken(TokenProblem.MALFORMED)
    if not hmac.compare_digest(given, _mac(secret, _TOKEN_LABEL, payload)):
        raise BadToken(TokenProblem.FORGED)
    claim = _claim(payload)
    if now >= claim.expires_at:
        raise BadToken(TokenProblem.EXPIRED)
    return claim


def csrf_value(secret: bytes, token: str) -> str:
    """The hidden field the confirm form must send back: only our page knows it for this token."""
    return _b64(_mac(secret, _CSRF_LABEL, token))


def csrf_matches(secret: bytes, token: str, given: str) -> bool:
    return hmac.compare_digest(given.encode(), csrf_value(secret, token).encode())


def _claim(payload: str) -> LinkClaim:
    # Signed by us, so well-formed unless the secret leaked or a bug wrote it; checked anyway.
    try:
        fields = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError):
        raise BadToken(TokenProblem.MALFORMED) from None
    if not isinstance(fields, list) or len(fields) != 4 or fields[0] != VERSION:
        raise BadToken(TokenProblem.MALFORMED)
    _, customer_id, broadcast_id, expires_at = fields
    if not (_is_int(customer_id) and isinstance(broadcast_id, str) and _is_int(expires_at)):
        raise BadToken(TokenProblem.MALFORMED)
    return LinkClaim(customer_id=customer_id, broadcast_id=broadcast_id, expires_at=expires_at)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mac(secret: bytes, label: bytes, text: str) -> bytes:
    return hmac.new(secret, label + text.encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or any(c not in _ALPHABET for c in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
