"""Who may see the dashboard: whoever has the Rasa auth token (the bot's one admin secret).

The token is accepted once (`?token=...` or the login form) and exchanged for an HttpOnly,
SameSite=Strict cookie. The cookie holds an HMAC of the token, not the token itself: it cannot be
used against Rasa's HTTP API, and it stops working when the token changes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

COOKIE = "dashboard_session"
_SESSION_MESSAGE = b"whatsapp-optout-bot dashboard session v1"


def session_value(token: str) -> str:
    return hmac.new(token.encode(), _SESSION_MESSAGE, hashlib.sha256).hexdigest()


def token_matches(candidate: str | None, token: str) -> bool:
    return bool(candidate) and hmac.compare_digest(str(candidate).encode(), token.encode())


def session_valid(cookie: str | None, token: str) -> bool:
    return bool(cookie) and hmac.compare_digest(str(cookie).encode(), session_value(token).encode())


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def cross_site(headers: Mapping[str, str], host: str) -> bool:
    """A request another site made the browser send. SameSite=Strict already keeps the cookie off
    such requests; this refuses them even without a cookie (e.g. the login form)."""
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = headers.get("Origin")
    return origin is not None and origin not in (f"http://{host}", f"https://{host}")
