"""The opt-out link's settings, from the environment (documented in the README):

- BOT_PUBLIC_URL            the bot's public HTTPS address, e.g. https://bot.example.com: the base of
                            every link (`<BOT_PUBLIC_URL>/webhooks/whatsapp/opt-out/<token>`), which
                            `templates show` writes into the template submitted to Meta (Meta
                            keeps it; a send supplies only the token). The page checks a
                            POST's Origin against it (unset: against the Host header).
- OPT_OUT_LINK_SECRET       the HMAC key of the tokens; the same on every replica and every process
                            that sends broadcasts. Unset: a random one kept in var/ (one machine only).
                            Changing it invalidates every link already sent.
- OPT_OUT_LINK_TTL_DAYS     how long a link works after the broadcast was sent; default 30.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.opt_out_link.token import LinkClaim, issue
from bot.processes import opt_out_link_secret
from bot.settings import from_env

DEFAULT_TTL_DAYS = 30
LINK_PATH = "/webhooks/whatsapp/opt-out/"


@dataclass(frozen=True)
class LinkSettings:
    secret: bytes
    ttl_days: int = DEFAULT_TTL_DAYS
    public_url: str = ""  # no trailing slash

    @property
    def ttl_seconds(self) -> int:
        return self.ttl_days * 86_400

    def url(self, token: str) -> str:
        return f"{self.public_url}{LINK_PATH}{token}"

    def token(self, customer_id: int, broadcast_id: str, sent_at: int) -> str:
        """The link's `{{1}}` for one recipient of a broadcast, valid for ttl_days from sending."""
        return issue(self.secret, LinkClaim(customer_id, broadcast_id, sent_at + self.ttl_seconds))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LinkSettings:
        settings = from_env(environ)
        return cls(
            secret=opt_out_link_secret(environ).encode(),
            ttl_days=settings.opt_out_link_ttl_days,
            public_url=public_url(settings.public_url),
        )


def public_url(raw: str) -> str:
    """'https://bot.example.com/' -> 'https://bot.example.com'; refuses what WhatsApp could not open
    safely (plain http except on loopback, a path, a query)."""
    raw = raw.strip().rstrip("/")
    if not raw:
        return ""
    parts = urlsplit(raw)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError("BOT_PUBLIC_URL must be an https:// address")
    if not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError("BOT_PUBLIC_URL is the bot's address only, e.g. https://bot.example.com")
    return raw
