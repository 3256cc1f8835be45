"""Who may see the dashboard: whoever has the Rasa auth token (the bot's one admin secret).

The token is accepted once (`?token=...` or the login form) and exchanged for a session cookie:
HttpOnly, SameSite=Strict, `Max-Age` SESSION_MAX_AGE, and Secure whenever the dashboard is reached
over HTTPS. The cookie holds the time it was issued and an HMAC of that time keyed with the token,
not the token itself: it cannot be used against Rasa's HTTP API, it stops working when the token
changes, and the server refuses it once it is older than SESSION_MAX_AGE, whatever the browser
(or someone who copied the cookie) does with Max-Age.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Mapping
from urllib.parse import unquote

COOKIE = "dashboard_session"
SESSION_MAX_AGE = 8 * 3600  # seconds: one working day, then the token is asked for again
CLOCK_SKEW = 60  # seconds a cookie may seem to come from the future (the wall clock was set back)
_SESSION_MESSAGE = b"whatsapp-optout-bot dashboard session v2"
# Percent-decoding rounds checked by `local_path`: enough for any double encoding, bounded for speed.
_DECODE_ROUNDS = 4


def session_value(token: str, issued_at: int) -> str:
    """`<issued_at>.<hmac>`: the issue time is signed, so it cannot be moved forward."""
    return f"{issued_at}.{_signature(token, issued_at)}"


def session_valid(cookie: str | None, token: str, now: int, max_age: int = SESSION_MAX_AGE) -> bool:
    if not cookie:
        return False
    issued, _, signature = str(cookie).partition(".")
    if not issued.isascii() or not issued.isdigit() or len(issued) > 12:
        return False
    if not hmac.compare_digest(signature.encode(), _signature(token, int(issued)).encode()):
        return False
    return -CLOCK_SKEW <= now - int(issued) <= max_age


def _signature(token: str, issued_at: int) -> str:
    message = _SESSION_MESSAGE + b"|" + str(issued_at).encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def token_matches(candidate: str | None, token: str) -> bool:
    return bool(candidate) and hmac.compare_digest(str(candidate).encode(), token.encode())


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go after logging in: a path on this site only (no open redirect), else `default`.

    Browsers drop tabs and newlines from a Location ("/\\t/evil.example" is "//evil.example", another
    host), read "\\" as "/", and some proxies decode %2F. So the target, and each percent-decoding of
    it, must be one "/" followed by anything but "/" or "\\", with no control, format or space
    character anywhere.
    """
    if not target:
        return default
    decoded = target
    for _ in range(_DECODE_ROUNDS):
        if not _plain_local_path(decoded):
            return default
        once_more = unquote(decoded)
        if once_more == decoded:
            return target
        decoded = once_more
    return default  # still encoded after that many rounds: nobody writes links like that


def _plain_local_path(path: str) -> bool:
    if path == "/":
        return True
    if not path.startswith("/") or path[1] in "/\\" or "\\" in path:
        return False
    return not any(c.isspace() or unicodedata.category(c).startswith(("C", "Z")) for c in path)


def cookie_secure(scheme: str, forwarded_proto: str | None, trust_proxy: bool, always: bool) -> bool:
    """Whether the session cookie gets `Secure`: the request came over HTTPS, as seen by the
    dashboard itself or, only when it is set up behind a trusted proxy, as that proxy says in
    X-Forwarded-Proto (the last value is the nearest proxy's), or a setting says always."""
    if always or scheme == "https":
        return True
    if trust_proxy and forwarded_proto:
        return forwarded_proto.rsplit(",", 1)[-1].strip().lower() == "https"
    return False


def cross_site(headers: Mapping[str, str], host: str) -> bool:
    """A request another site made the browser send. SameSite=Strict already keeps the cookie off
    such requests; this refuses them even without a cookie (e.g. the login form)."""
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = headers.get("Origin")
    return origin is not None and origin not in (f"http://{host}", f"https://{host}")
