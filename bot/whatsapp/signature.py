"""X-Hub-Signature-256: HMAC-SHA256 of the raw request body, keyed with the Meta app secret.

https://developers.facebook.com/docs/graph-api/webhooks/getting-started#event-notifications
"""

import enum
import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


class SignatureCheck(enum.Enum):
    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for this body (used by tests, the simulator and benchmarks)."""
    return _PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(body: bytes, header: str | None, app_secret: str) -> SignatureCheck:
    """Compare in constant time; anything that is not exactly a valid signature is refused."""
    if not header:
        return SignatureCheck.MISSING
    expected = sign(body, app_secret)
    if hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace")):
        return SignatureCheck.VALID
    return SignatureCheck.INVALID
