"""`make run` without WhatsApp credentials: the bot is wired to the simulator instead of Meta.

Local secrets are generated once into var/ (git-ignored, mode 0600) so that webhooks are still
signed and checked exactly as in production, and the bot sends to the local Graph API stand-in.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.private_files import private_dir
from bot.whatsapp import meta_payloads
from bot.whatsapp.config import WhatsAppConfig

GRAPH_API_VERSION = "v21.0"


def wants_simulator(config: WhatsAppConfig) -> bool:
    """No credential of a real number at all. Any one of them means someone is connecting WhatsApp,
    and then the bot keeps their settings (and says what is missing) rather than a fake."""
    return not (config.app_secret or config.access_token or config.phone_number_id)


@dataclass(frozen=True, slots=True)
class LocalCredentials:
    app_secret: str
    verify_token: str
    access_token: str

    @classmethod
    def load_or_create(cls, path: Path) -> LocalCredentials:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        credentials = cls(
            app_secret=secrets.token_urlsafe(32),
            verify_token=secrets.token_urlsafe(16),
            access_token=secrets.token_urlsafe(32),
        )
        private_dir(path.parent)
        path.touch(mode=0o600)
        path.write_text(json.dumps(asdict(credentials), indent=2))
        return credentials

    def environment(self, stand_in_url: str) -> dict[str, str]:
        """WHATSAPP_* for the bot's processes: signed webhooks, replies to the stand-in."""
        return {
            "WHATSAPP_APP_SECRET": self.app_secret,
            "WHATSAPP_VERIFY_TOKEN": self.verify_token,
            "WHATSAPP_ACCESS_TOKEN": self.access_token,
            "WHATSAPP_PHONE_NUMBER_ID": meta_payloads.PHONE_NUMBER_ID,
            "WHATSAPP_API_URL": f"{stand_in_url}/{GRAPH_API_VERSION}",
        }
